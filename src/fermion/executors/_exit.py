"""Whether the interpreter has begun to exit, as concurrent.futures tracks it: from then
on every Executor refuses new work, whatever its backend (an ``atexit`` handler that
submits gets RuntimeError, as with the standard executors, instead of work that may
never run)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["forget_in_forked_child", "interpreter_exiting", "register_at_exit", "watch_exit"]

_exiting = False
_watching = False
_lock = threading.Lock()


def _mark_exiting() -> None:
    global _exiting
    _exiting = True


def register_at_exit(fn: Callable[[], None]) -> bool:
    """Call ``fn`` when the interpreter begins to exit, with threading's exit hooks (as
    concurrent.futures does: before ``atexit`` handlers and before non-daemon threads are
    joined). False if it cannot be: the interpreter is exiting already, or this Python
    has no such hook."""
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        return False
    try:
        register(fn)
    except RuntimeError:  # already exiting
        return False
    return True


def watch_exit() -> None:
    """Once per interpreter: note when it begins to exit."""
    global _watching
    with _lock:
        if _watching:
            return
        if not register_at_exit(_mark_exiting) and hasattr(threading, "_register_atexit"):
            _mark_exiting()  # refused: exiting already
        _watching = True


def interpreter_exiting() -> bool:
    return _exiting


def forget_in_forked_child(fn: Callable[[], None]) -> None:
    """Call ``fn`` in a child made by ``fork`` (a ``fork`` pool's worker, ``os.fork``).

    The child has none of the parent's threads and inherits the parent's exit hooks:
    a pool's exit handler would wait there for threads that do not exist, under locks
    that a parent thread may have held at the fork. ``fn`` drops the registries those
    handlers read and makes their locks anew.
    """
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=fn)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


forget_in_forked_child(_after_fork_in_child)
