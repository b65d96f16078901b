"""How long a worker process takes to start: measured once one has started in this
process, guessed before.

A worker started by spawn or forkserver is a fresh interpreter that imports fermion's
worker and runs the main module of a script again (its top level, not the
``if __name__ == "__main__"`` block), so that what it defines can be unpickled there. That
last part is the program's own and unknown: a script that builds a table at import takes
as long in every worker. The CPU time this process had used when its first executor was
made stands for it: up to then a script has mostly imported and set up (a notebook, the
prompt or ``-c`` have no main module to run again).

Light on purpose (no cloudpickle, no psutil): every executor notes its creation here.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = [
    "expected_worker_startup",
    "known_worker_startup",
    "note_executor_created",
    "record_worker_startup",
]

#: Seconds to start a worker process whose main module costs nothing to run again: a
#: fresh interpreter and fermion's worker (0.06-0.1 s on a quiet 2-core laptop); the
#: least a guess says.
WORKER_STARTUP = 0.1
#: The most a guess says (a program's CPU time before its first executor is not all
#: its main module's).
MAIN_MODULE_AT_MOST = 1.0

_startup_seconds: float | None = None
_cpu_at_first_executor: float | None = None


def note_executor_created() -> None:
    """An executor is being made: the first time, keep the CPU time this process has
    used so far (its imports and set-up, see the module doc)."""
    global _cpu_at_first_executor
    if _cpu_at_first_executor is None:
        _cpu_at_first_executor = time.process_time()


def known_worker_startup() -> float | None:
    """Seconds a worker process took to start in this process (the quickest seen), if
    one was measured already."""
    return _startup_seconds


def record_worker_startup(seconds: float) -> None:
    """Keep a measured start-up of a worker process, for ``auto`` and ``profile`` (the
    quickest: the first may include the forkserver's own start)."""
    global _startup_seconds
    if _startup_seconds is None or seconds < _startup_seconds:
        _startup_seconds = seconds


def expected_worker_startup() -> float:
    """Seconds a worker process is expected to take to start: the quickest measured in
    this process, or the guess of the module doc."""
    known = known_worker_startup()
    if known is not None:
        return known
    if not _main_module_reruns():
        return WORKER_STARTUP
    used = _cpu_at_first_executor if _cpu_at_first_executor is not None else time.process_time()
    # (the CPU used so far counts the interpreter's start and the imports a worker makes too)
    return max(WORKER_STARTUP, min(used, MAIN_MODULE_AT_MOST))


def _main_module_reruns() -> bool:
    """Worker processes run this process's main module again: a script run from a file
    or by module name (``-m``)."""
    main = sys.modules.get("__main__")
    if main is None:
        return False
    if getattr(main, "__spec__", None) is not None:
        return True
    path = getattr(main, "__file__", None)
    return isinstance(path, str) and os.path.isfile(path)
