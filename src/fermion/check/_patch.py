"""patch_threading(): make the standard library's primitives checked ones.

Swaps ``threading.Lock``/``RLock``/``Condition``/``Semaphore``/``BoundedSemaphore``/
``Event``/``Barrier`` and ``queue.Queue``/``LifoQueue``/``PriorityQueue``/
``SimpleQueue`` for fermion's checked versions, and instruments ``Thread.join`` (a
registered, deadlock-checked wait), ``Thread.start`` and the thread bootstrap (the
happens-before hand-offs of start and exit), and ``ThreadPoolExecutor.submit`` (which
pool a future's task is queued on, for the pool-capacity check), so unmodified programs
and libraries are checked. Primitives created before the patch stay what they were. Undo restores every
attribute exactly.
"""

from __future__ import annotations

import _thread
import queue
import sys
import threading
import types
import warnings
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

from fermion.sync import _registry
from fermion.sync._conditions import (
    CheckedBarrier,
    CheckedBoundedSemaphore,
    CheckedCondition,
    CheckedEvent,
    CheckedSemaphore,
)
from fermion.sync._locks import CheckedLock, CheckedRLock
from fermion.sync._queues import (
    CheckedLifoQueue,
    CheckedPriorityQueue,
    CheckedQueue,
    CheckedSimpleQueue,
)
from fermion.sync._registry import blocking_wait, caller_site

__all__ = ["Patch", "patch_threading", "thread_pools"]

_original_join = threading.Thread.join
_original_start = threading.Thread.start
_original_bootstrap_inner = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]


# What the patch installs looks like what it replaces: the same __module__, __name__,
# __qualname__ and __doc__ (code that introspects threading, e.g. CPython's own
# test_threading, sees no difference), subclasses of fermion's checked classes so
# isinstance() against those still holds.
_ORIGINAL_LOCK = threading.Lock
_ORIGINAL_LOCK_TYPE = type(_ORIGINAL_LOCK())


def _instantiable(tp: type) -> bool:
    try:
        tp()
    except TypeError:
        return False
    return True


def _dressed_as(original: Any, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    names = ("__module__", "__name__", "__qualname__", "__doc__")
    out = {name: getattr(original, name) for name in names if hasattr(original, name)}
    out.update(namespace or {})
    return out


def _lookalike(checked: type, original: type) -> type:
    """A subclass of *checked* that names itself as *original* does."""
    namespace = _dressed_as(original)
    if "__slots__" in checked.__dict__:
        namespace["__slots__"] = ()
    return type(original.__name__, (checked,), namespace)


def _lock_init(self: CheckedLock) -> None:
    CheckedLock.__init__(self, strict=False, _created=caller_site())


def _no_subclass(cls: type, **kwargs: Any) -> None:
    # The lock type has never accepted subclasses (CPython's test_lock_no_subclass).
    raise TypeError(
        f"type '{_ORIGINAL_LOCK_TYPE.__module__}.{_ORIGINAL_LOCK_TYPE.__name__}' is not an "
        "acceptable base type"
    )


if _instantiable(_ORIGINAL_LOCK_TYPE):
    # 3.13+: threading.Lock is the lock type itself; the patched one is a class too.
    _PatchedLock: Any = type(
        _ORIGINAL_LOCK_TYPE.__name__,
        (CheckedLock,),
        _dressed_as(
            _ORIGINAL_LOCK_TYPE,
            {"__slots__": (), "__init__": _lock_init, "__init_subclass__": _no_subclass},
        ),
    )
else:

    def _refuse(cls: type, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"cannot create '{cls.__module__}.{cls.__name__}' instances")

    _PatchedLock = type(
        _ORIGINAL_LOCK_TYPE.__name__,
        (CheckedLock,),
        _dressed_as(
            _ORIGINAL_LOCK_TYPE,
            {"__slots__": (), "__new__": _refuse, "__init_subclass__": _no_subclass},
        ),
    )


def _lenient_lock() -> CheckedLock:
    """``threading.Lock()`` while patched: checked, but any thread may release it."""
    if isinstance(_ORIGINAL_LOCK, type):
        lock: CheckedLock = _PatchedLock()
        return lock
    lock = object.__new__(_PatchedLock)
    CheckedLock.__init__(lock, strict=False, _created=caller_site())
    return lock


def _checked_rlock(*args: Any, **kwargs: Any) -> CheckedRLock:
    if (args or kwargs) and sys.version_info >= (3, 13):
        # threading.RLock's own deprecation, from 3.13 on
        warnings.warn(
            "Passing arguments to RLock is deprecated and will be removed in 3.15",
            DeprecationWarning,
            stacklevel=2,
        )
    return CheckedRLock(_created=caller_site())


for _function, _original in ((_lenient_lock, _ORIGINAL_LOCK), (_checked_rlock, threading.RLock)):
    for _name, _value in _dressed_as(_original).items():
        setattr(_function, _name, _value)
_LOCK_FACTORY: Any = _PatchedLock if isinstance(_ORIGINAL_LOCK, type) else _lenient_lock


def _checked_join(self: threading.Thread, timeout: float | None = None) -> None:
    if not self._started.is_set() or self is threading.current_thread():  # type: ignore[attr-defined]
        _original_join(self, timeout)  # raises the standard error
        return
    if timeout is not None:
        _original_join(self, timeout)
    elif self.is_alive():

        def try_join(seconds: float) -> bool:
            _original_join(self, seconds)
            return not self.is_alive()

        blocking_wait(
            self,
            caller_site(),
            None,
            try_join,
            lambda: not self.is_alive(),
            lambda: (self.ident,) if self.ident is not None and self.is_alive() else (),
        )
    if not self.is_alive() and _registry._on_handoff_acquire:
        me = threading.get_ident()
        for callback in _registry._on_handoff_acquire:
            callback(("thread-exit", self), me)


def _checked_start(self: threading.Thread) -> None:
    if _registry._on_handoff_release:
        me = threading.get_ident()
        for callback in _registry._on_handoff_release:
            callback(("thread-start", self), me)
    _original_start(self)


def _checked_bootstrap_inner(self: threading.Thread) -> None:
    # The start hand-off is taken from inside run(), where the thread is registered in
    # threading (current_thread() works). The exit hand-off is made once threading has
    # unregistered the thread: its teardown (Thread._delete) runs program code too (a
    # patched threading.get_ident, as pebble's waitforthreads installs), and a join
    # returns only after it.
    target_run = self.run
    idents: list[int] = []

    def run() -> None:
        me = threading.get_ident()
        idents.append(me)
        for callback in _registry._on_handoff_acquire:
            callback(("thread-start", self), me)
        target_run()

    self.run = run  # type: ignore[method-assign]
    try:
        _original_bootstrap_inner(self)
    finally:
        with suppress(AttributeError):
            del self.run
        me = idents[0] if idents else _thread.get_ident()
        if idents:
            for callback in _registry._on_handoff_release:
                callback(("thread-exit", self), me)
        _registry.forget_thread(me)


_original_submit = ThreadPoolExecutor.submit
# The thread pools that queued tasks while patched (the pool-capacity check reads them).
_pools: weakref.WeakSet[ThreadPoolExecutor] = weakref.WeakSet()


def thread_pools() -> list[ThreadPoolExecutor]:
    """Each ``ThreadPoolExecutor`` that was given tasks while threading was patched."""
    return list(_pools)


def _checked_submit(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
    future = _original_submit(self, fn, *args, **kwargs)
    # A wait on this future is a wait for a task queued on *self*: tag its condition
    # (what the waiter is registered on) with both, weakly.
    with suppress(AttributeError, TypeError):
        future._condition._fermion_task_of = (  # type: ignore[attr-defined]
            weakref.ref(self),
            weakref.ref(future),
            f"the result of a task queued on {type(self).__name__} "
            f"{self._thread_name_prefix!r} (max_workers={self._max_workers})",
        )
    _pools.add(self)
    return future


for _name, _value in _dressed_as(_original_submit).items():
    setattr(_checked_submit, _name, _value)


_REPLACEMENTS: list[tuple[Any, str, Any]] = [
    (threading, "Lock", _LOCK_FACTORY),
    (threading, "RLock", _checked_rlock),
    (threading, "Condition", _lookalike(CheckedCondition, threading.Condition)),
    (threading, "Semaphore", _lookalike(CheckedSemaphore, threading.Semaphore)),
    (
        threading,
        "BoundedSemaphore",
        _lookalike(CheckedBoundedSemaphore, threading.BoundedSemaphore),
    ),
    (threading, "Event", _lookalike(CheckedEvent, threading.Event)),
    (threading, "Barrier", _lookalike(CheckedBarrier, threading.Barrier)),
    (queue, "Queue", _lookalike(CheckedQueue, queue.Queue)),
    (queue, "LifoQueue", _lookalike(CheckedLifoQueue, queue.LifoQueue)),
    (queue, "PriorityQueue", _lookalike(CheckedPriorityQueue, queue.PriorityQueue)),
    (queue, "SimpleQueue", _lookalike(CheckedSimpleQueue, queue.SimpleQueue)),
    (threading.Thread, "join", _checked_join),
    (threading.Thread, "start", _checked_start),
    (threading.Thread, "_bootstrap_inner", _checked_bootstrap_inner),
    (ThreadPoolExecutor, "submit", _checked_submit),
]


# Each replacement of a module's name pickles by reference where it is installed
# (threading.Lock, queue.SimpleQueue), not under its original's own name
# (_thread.allocate_lock, _queue.SimpleQueue), where pickle would find the original and
# refuse: a multiprocessing Manager's registry holds threading.Lock, and a spawned
# child then unpickles its own, unpatched one.
for _owner, _name, _replacement in _REPLACEMENTS:
    if isinstance(_owner, types.ModuleType):
        _replacement.__module__, _replacement.__qualname__ = _owner.__name__, _name


class Patch:
    """An applied patch; :meth:`undo` restores the originals (also on ``with`` exit)."""

    def __init__(self, *, nested: bool = False) -> None:
        self._saved: list[tuple[Any, str, Any]] | None = None
        self._nested = nested

    def apply(self) -> Patch:
        if self._saved is not None:
            raise RuntimeError("this patch_threading() patch is already applied")
        if self._nested:  # an outer patch is in force and will restore everything
            self._saved = []
            return self
        self._saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in _REPLACEMENTS]
        for owner, name, replacement in _REPLACEMENTS:
            setattr(owner, name, replacement)
        return self

    def undo(self) -> None:
        """Put every original back (idempotent)."""
        saved, self._saved = self._saved, None
        for owner, name, original in saved or ():
            setattr(owner, name, original)

    @property
    def active(self) -> bool:
        return self._saved is not None

    def __enter__(self) -> Patch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.undo()


_active: list[Patch] = []


def patch_threading() -> Patch:
    """Make threading's and queue's primitives checked; usable as a context manager.

    Calling it while a patch is in force returns a nested patch whose undo does
    nothing: the outermost patch restores the originals.

    Returns the applied :class:`Patch`; ``patch.undo()`` or leaving the ``with`` block
    restores everything. Checks themselves are turned on by
    :func:`fermion.check.enable` (the CLI and the pytest plugin do both).
    """
    if _active and _active[-1].active and not _active[-1]._nested:
        # Nested use (e.g. the race detector inside ``fermion check``): the outer patch
        # stays in force and is the one that restores the originals.
        return Patch(nested=True).apply()
    patch = Patch().apply()
    _active[:] = [patch]
    return patch


@contextmanager
def _patched() -> Iterator[Patch]:
    patch = patch_threading()
    try:
        yield patch
    finally:
        patch.undo()
