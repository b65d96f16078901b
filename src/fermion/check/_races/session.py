"""A race-detection session: instrumentation on, recording, findings out.

The entry point ``fermion check --races`` calls, in the checked program's process::

    handle = start(script_path, include_patterns)   # before the program runs
    ...                                             # runpy.run_path(script_path) etc.
    findings = handle.stop()                        # after it ends

``script_path`` is the script (its directory's modules are instrumented and so is the
script itself when it runs through ``runpy.run_path``) or, for ``-m MODULE``, the
module name (then the current directory's modules are instrumented).
``include_patterns`` adds modules by name (``mypkg``, ``mypkg.*``) or path glob, even
from site-packages.

:class:`RaceSession` splits the same work in two for callers that record several
windows with one instrumentation (the pytest plugin: one window per test).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from fermion.check._races import _runtime
from fermion.check._races._detector import Access, Race
from fermion.check._races._handoffs import RegistryListener, ThreadingPatches, lock_label
from fermion.check._races._importer import InstrumentingFinder, patch_runpy
from fermion.check._races._rewrite import DELETE, ITERATE, READ, RESIZE, UPDATE
from fermion.check._report import Finding, Location
from fermion.errors import RaceSessionError
from fermion.sync import _registry

__all__ = ["RaceSession", "findings_of", "start"]

_session_lock = threading.Lock()
_active: RaceSession | None = None


class RaceSession:
    """Instrumentation (import hook, patches, checked primitives) plus recording windows."""

    def __init__(
        self,
        roots: Sequence[str] = (),
        include: Sequence[str] = (),
        *,
        script: str | None = None,
        skip_files: Sequence[str] = (),
    ) -> None:
        self.finder = InstrumentingFinder(roots, include)
        if skip_files:
            self.finder.skip_files = list(skip_files)
        self.script = script
        self._listener = RegistryListener()
        self._patches = ThreadingPatches()
        self._primitive_patch: Any = None
        self._runpy: Any = None
        self._checks_were: bool | None = None
        self._installed = False

    # -- instrumentation ----------------------------------------------------------------

    def install(self) -> None:
        """Hook imports (and the script), patch threading, make new primitives checked."""
        global _active
        with _session_lock:
            if _active is not None:
                raise RaceSessionError(
                    "a race-detection session is already running in this process and "
                    "sessions do not nest; stop it (handle.stop(), or leave its races() "
                    "block) before starting another"
                )
            _active = self
        try:
            from fermion.sync import _config

            self._checks_were = _config.checks_enabled()
            _config.set_checks_enabled(True)
            self._primitive_patch = _patch_primitives()
            _registry.add_listener(self._listener)
            self._patches.install()
            self.finder.install()
            if self.script is not None and os.path.isfile(self.script):
                self._runpy = patch_runpy(self.script)
            self._installed = True
        except BaseException:
            self.uninstall()
            raise

    def uninstall(self) -> None:
        """Undo :meth:`install`."""
        global _active
        if self._runpy is not None:
            self._runpy.uninstall()
            self._runpy = None
        self.finder.uninstall()
        self._patches.uninstall()
        _registry.remove_listener(self._listener)
        if self._primitive_patch is not None:
            self._primitive_patch.__exit__(None, None, None)
            self._primitive_patch = None
        if self._checks_were is not None:
            from fermion.sync import _config

            _config.set_checks_enabled(self._checks_were)
            self._checks_were = None
        self._installed = False
        with _session_lock:
            if _active is self:
                _active = None

    # -- recording ------------------------------------------------------------------------

    def begin(self) -> None:
        """Start a recording window with a fresh detector."""
        _runtime.activate()

    def end(self) -> list[Finding]:
        """End the window; the races it saw, one finding per location and pair of sites."""
        detector = _runtime.deactivate()
        return findings_of(detector.races)

    def stop(self) -> list[Finding]:
        """End recording and undo the instrumentation; returns the findings."""
        try:
            return self.end()
        finally:
            self.uninstall()


def start(script_path: str, include_patterns: Sequence[str] = ()) -> RaceSession:
    """Instrument and start recording for the program at *script_path* (see the module doc)."""
    if not isinstance(script_path, str):
        raise TypeError(
            f"script_path must be a str (a file or a module name), not {type(script_path).__name__}"
        )
    if os.path.isfile(script_path):
        roots = [os.path.dirname(os.path.abspath(script_path))]
        session = RaceSession(roots, include_patterns, script=script_path)
    else:
        # ``-m MODULE``: the module and its neighbours in the working directory.
        session = RaceSession([os.getcwd()], [*include_patterns, script_path.split(".")[0]])
    session.install()
    session.begin()
    return session


def _patch_primitives() -> Any:
    """Make threading's and queue's primitives checked (nested under an outer patch)."""
    from fermion.check._patch import patch_threading

    return patch_threading()


_VERBS = {READ: "reads", UPDATE: "updates (read-modify-write)", DELETE: "deletes"}
# For a container's size (its shape): what the site does to it.
_SHAPE_VERBS = {ITERATE: "iterates", DELETE: "deletes from", RESIZE: "resizes"}


def _describe(access: Access, shape: bool = False) -> tuple[str, Location]:
    info = _runtime.SITES[access.site]
    locks = access.locks
    thread = _runtime.thread_name(access.thread, access.clock)
    verbs, default = (_SHAPE_VERBS, "inserts into") if shape else (_VERBS, "writes")
    verb = verbs.get(info.kind, default)
    held = ", ".join(sorted(lock_label(lock) for lock in locks)) or "no lock"
    text = f"{thread} {verb} it at {os.path.basename(info.file)}:{info.line} in {info.function}, holding {held}"
    return text, Location(info.file, info.line, info.function, thread)


def findings_of(races: Sequence[Race]) -> list[Finding]:
    """Turn the detector's races into report findings (kind ``"race"``)."""
    findings = []
    for race in races:
        shape = race.detail == _runtime.SHAPE_DETAIL
        second, first = race.second, race.first
        later, later_loc = _describe(second, shape)
        earlier, earlier_loc = _describe(first, shape)
        where = f"{race.location} ({race.detail})" if race.detail else race.location
        message = (
            f"data race on {where}: {later}; {earlier}. Neither access happens-before "
            "the other and they hold no lock in common."
        )
        findings.append(Finding("race", message, (later_loc, earlier_loc)))
    return findings
