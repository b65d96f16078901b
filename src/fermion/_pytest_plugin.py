"""``pytest --fermion-check``: fail a test that deadlocks, stalls or inverts lock order.

Registered through the ``pytest11`` entry point, so it is loaded by every pytest run
in an environment where fermion is installed; without ``--fermion-check`` it only
adds the option and does nothing else (no fermion import, no patching).

With the option, each test's call phase runs with the checks enabled and
``patch_threading()`` applied: a wait-for cycle raises ``DeadlockError`` in the test
at once, a stall is aborted with ``DeadlockError`` within about a second instead of
hanging the run, and a lock-order inversion fails the test with both acquisition
stacks. Threads that existed before the test (e.g. pytest-timeout's timer) are left
out of the stall check.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

import pytest

_OPTION = "--fermion-check"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fermion")
    group.addoption(
        _OPTION,
        action="store_true",
        default=False,
        help="fermion: fail tests that deadlock, stall or take locks in inconsistent orders.",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption(_OPTION, default=False):
        config.pluginmanager.register(FermionCheckPlugin(), "fermion-check")


class FermionCheckPlugin:
    """The active part, registered only when ``--fermion-check`` is given."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        from fermion import check
        from fermion.check._report import Report

        me = threading.get_ident()
        before = {t.ident for t in threading.enumerate() if t.ident is not None and t.ident != me}
        found: list[Any] = []
        unsubscribe = check.add_finding_listener(found.append)
        enabled = check.enable(on_lock_order="record", ignored_threads=before)
        patch = check.patch_threading()
        try:
            result = yield
        finally:
            patch.undo()
            enabled.__exit__(None, None, None)
            unsubscribe()
        failing = [f for f in found if f.kind in ("deadlock", "lock-order")]
        notes = [f for f in found if f.kind == "starvation"]
        if notes:
            item.add_report_section("call", "fermion check", Report(notes).to_text())
        if failing:
            raise pytest.fail.Exception(Report(failing).to_text(), pytrace=False)
        return result
