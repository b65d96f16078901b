"""Whether the interpreter has begun to exit, as concurrent.futures tracks it: from then
on every Executor refuses new work, whatever its backend (an ``atexit`` handler that
submits gets RuntimeError, as with the standard executors, instead of work that may
never run)."""

from __future__ import annotations

import threading

__all__ = ["interpreter_exiting", "watch_exit"]

_exiting = False
_watching = False
_lock = threading.Lock()


def _mark_exiting() -> None:
    global _exiting
    _exiting = True


def watch_exit() -> None:
    """Once per interpreter: note when it begins to exit (threading's exit hooks run
    before ``atexit`` handlers, as the standard executors' do)."""
    global _watching
    with _lock:
        if _watching:
            return
        register = getattr(threading, "_register_atexit", None)
        if register is None:
            return
        try:
            register(_mark_exiting)
        except RuntimeError:  # already exiting
            _mark_exiting()
        _watching = True


def interpreter_exiting() -> bool:
    return _exiting
