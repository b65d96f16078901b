"""fermion.check: deadlocks, global stalls, lock-order inversions and starvation as reports.

Turn the checks on with :func:`enable` (also a context manager), the environment
variable ``FERMION_CHECK=1``, the ``fermion check`` command, or ``pytest
--fermion-check``. Primitives created while checks are on (``fermion.sync``'s, and the
standard library's under :func:`patch_threading`) are checked:

* an unbounded wait that closes a wait-for cycle raises :class:`DeadlockError` at once;
* when every thread is blocked for good, every wait is reported and aborted with a
  :class:`DeadlockError` within about a second;
* locks taken in orders that form a cycle give a lock-order finding (warned about,
  raised, or only recorded, as ``on_lock_order`` says);
* a starving waiter gives a :class:`StarvationWarning` with counts.

Findings accumulate in :func:`findings`; :func:`report` wraps them in a
:class:`Report` that renders as text, JSON or SARIF.
"""

from __future__ import annotations

from typing import Any

from fermion.check._checker import (
    LOCK_ORDER_MODES,
    CheckConfig,
    Checker,
    add_finding_listener,
    clear_findings,
    findings,
)
from fermion.check._patch import Patch, patch_threading
from fermion.check._races._api import races
from fermion.check._report import Finding, Location, Report
from fermion.sync import _registry
from fermion.sync._config import checks_enabled, set_checks_enabled

__all__ = [
    "LOCK_ORDER_MODES",
    "CheckConfig",
    "Finding",
    "Location",
    "Patch",
    "Report",
    "add_finding_listener",
    "clear_findings",
    "disable",
    "enable",
    "enabled",
    "findings",
    "patch_threading",
    "races",
    "report",
]

_checker: Checker | None = None


class _EnabledChecks:
    """What :func:`enable` returns: leaving its ``with`` block restores the previous state."""

    def __init__(self, previous: CheckConfig | None) -> None:
        self._previous = previous

    def __enter__(self) -> _EnabledChecks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is None:
            disable()
        else:
            _install(self._previous)


def enable(
    *,
    deadlocks: bool = True,
    lock_order: bool = True,
    starvation: bool = True,
    on_lock_order: str = "warn",
    starvation_threshold: float = 1.0,
    starvation_min_others: int = 20,
    poll_interval: float = 0.25,
    ignored_threads: Any = (),
) -> _EnabledChecks:
    """Create checked primitives from now on, and run the chosen checks.

    ``on_lock_order`` is ``"warn"`` (a :class:`LockOrderWarning`), ``"raise"`` (a
    :class:`LockOrderError` from the acquire that closes the cycle) or ``"record"``
    (findings only). ``ignored_threads`` are thread idents the stall check leaves out
    (e.g. a test runner's own timer thread). Use as ``with enable(): ...`` to restore
    the previous state afterwards.
    """
    config = CheckConfig(
        deadlocks=deadlocks,
        lock_order=lock_order,
        starvation=starvation,
        on_lock_order=on_lock_order,
        starvation_threshold=starvation_threshold,
        starvation_min_others=starvation_min_others,
        poll_interval=poll_interval,
        ignored_threads=set(ignored_threads),
    )
    previous = _checker.config if _checker is not None else None
    _install(config)
    return _EnabledChecks(previous)


def _install(config: CheckConfig) -> None:
    global _checker
    _uninstall()
    checker = Checker(config)
    _registry.add_listener(checker)
    checker.start()
    _checker = checker
    set_checks_enabled(True)


def _uninstall() -> None:
    global _checker
    if _checker is not None:
        _checker.stop()
        _registry.remove_listener(_checker)
        _checker = None


def disable() -> None:
    """Create plain (unchecked) primitives from now on and stop the checks."""
    _uninstall()
    set_checks_enabled(False)


def enabled() -> bool:
    """Whether primitives created now are checked."""
    return checks_enabled()


def report(argv: list[str] | None = None, exit_code: int | None = None) -> Report:
    """The findings so far as a :class:`Report`."""
    return Report(findings(), list(argv or []), exit_code)
