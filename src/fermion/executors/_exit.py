"""Whether the interpreter has begun to exit, as concurrent.futures tracks it: from then
on every Executor refuses new work, whatever its backend (an ``atexit`` handler that
submits gets RuntimeError, as with the standard executors, instead of work that may
never run)."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = [
    "ExitRegistry",
    "forget_in_forked_child",
    "interpreter_exiting",
    "register_at_exit",
    "watch_exit",
]

_Pool = TypeVar("_Pool")

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


class ExitRegistry(Generic[_Pool]):
    """The live pools of one backend, and what to do with them when the interpreter exits.

    Every backend's exit handling goes through one of these: a pool adds itself when it
    starts and discards itself when it is shut down; at exit, ``at_exit`` runs once
    with the pools still alive, from threading's exit hooks (:func:`register_at_exit`,
    as concurrent.futures). Pools are held weakly, so a dropped pool is not kept for
    its exit. A forked child starts with none: the parent's pools' threads are not in it.
    """

    def __init__(self, at_exit: Callable[[list[_Pool]], None]) -> None:
        self._at_exit = at_exit
        self._live: weakref.WeakSet[_Pool] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._registered = False
        forget_in_forked_child(self._forget)

    def add(self, pool: _Pool) -> None:
        with self._lock:
            self._live.add(pool)
            if not self._registered:
                self._registered = register_at_exit(self._run)

    def discard(self, pool: _Pool) -> None:
        with self._lock:
            self._live.discard(pool)

    def _run(self) -> None:
        with self._lock:
            pools = list(self._live)
        self._at_exit(pools)

    def _forget(self) -> None:
        self._live = weakref.WeakSet()
        self._lock = threading.Lock()
