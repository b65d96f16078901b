"""Where the detector's synchronisation events come from.

* Locksets and most hand-offs come from fermion's checked primitives through the
  registry in :mod:`fermion.sync._registry` (:class:`RegistryListener`). A race
  session makes the standard library's primitives checked ones
  (``fermion.check.patch_threading``) so that ``threading.Lock()`` in an unmodified
  program is tracked.
* Release→acquire of an *exclusive* lock (Lock, RLock, FairLock) is deliberately not a
  happens-before edge: the lockset covers locks, and ignoring which thread happened to
  take a lock first is what makes the verdict independent of the schedule.
* Thread start and join come through the registry too: ``patch_threading`` (which every
  race session applies) emits the ``("thread-start", thread)`` and
  ``("thread-exit", thread)`` hand-offs, and a checked Event emits ``is_set()``
  returning True like ``wait()`` returning True.
* ``concurrent.futures.Future`` (``set_result`` → ``result()``) and
  ``ThreadPoolExecutor.submit`` (submit → the task runs) are patched here
  (:class:`ThreadingPatches`): they use no checked primitive the registry would see.
* So are the pipes of ``multiprocessing`` (``Connection.send`` → a ``recv`` that
  returns): what a thread receives may answer what another thread sent before, through
  a process the detector does not see (a pool's worker acknowledging a task), so every
  message received is ordered after every message sent before it on any pipe. Races
  between threads that talk only through pipes may go unseen; none are invented.
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing.connection
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fermion.check._races import _runtime

__all__ = ["RegistryListener", "ThreadingPatches", "lock_label"]

#: The hand-off every pipe message makes (see the module doc).
_PIPES = ("multiprocessing pipes",)


def lock_label(lock: object) -> str:
    """How a report names a lock: its checked description, else its repr."""
    describe = getattr(lock, "_describe", None)
    if callable(describe):
        try:
            return str(describe())
        except Exception:
            pass
    return f"{type(lock).__name__}#{id(lock):x}"


class RegistryListener:
    """Feeds the race runtime from the checked primitives' registry events.

    Its methods are the runtime's own functions (one Python call per event), which
    skip release→acquire of exclusive locks (Lock, RLock, FairLock): the lockset covers
    those, and ignoring which thread happened to take a lock first keeps the verdict
    independent of the schedule. ``handoffs_from_locks = False`` tells the registry so:
    a checked Lock/RLock then makes one call per event (``on_acquired`` or
    ``on_released``), not two.
    """

    handoffs_from_locks = False
    on_acquired = staticmethod(_runtime.on_acquired)
    on_released = staticmethod(_runtime.on_released)
    on_handoff_release = staticmethod(_runtime.on_handoff_release)
    on_handoff_acquire = staticmethod(_runtime.on_handoff_acquire)


def _run_after_submit(token: Hashable, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    if _runtime.is_active():
        _runtime.handoff_acquire(token)
    return fn(*args, **kwargs)


class ThreadingPatches:
    """Patches Future and ThreadPoolExecutor for happens-before edges; undoable."""

    def __init__(self) -> None:
        self._saved: list[tuple[object, str, object]] = []

    def _patch(self, owner: object, name: str, replacement: object) -> None:
        self._saved.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, replacement)

    def install(self) -> None:
        """Apply the patches (once)."""
        if self._saved:
            return
        set_result = Future.set_result
        set_exception = Future.set_exception
        result = Future.result
        exception = Future.exception

        @functools.wraps(set_result)
        def future_set_result(future: Future[Any], value: Any) -> None:
            if _runtime.is_active():
                _runtime.handoff_release(future)
            set_result(future, value)

        @functools.wraps(set_exception)
        def future_set_exception(future: Future[Any], error: BaseException | None) -> None:
            if _runtime.is_active():
                _runtime.handoff_release(future)
            set_exception(future, error)

        @functools.wraps(result)
        def future_result(future: Future[Any], timeout: float | None = None) -> Any:
            try:
                return result(future, timeout)
            finally:
                if _runtime.is_active() and future.done():
                    _runtime.handoff_acquire(future)

        @functools.wraps(exception)
        def future_exception(
            future: Future[Any], timeout: float | None = None
        ) -> BaseException | None:
            try:
                return exception(future, timeout)
            finally:
                if _runtime.is_active() and future.done():
                    _runtime.handoff_acquire(future)

        submit: Callable[..., Future[Any]] = ThreadPoolExecutor.submit

        @functools.wraps(submit)
        def executor_submit(
            executor: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
        ) -> Future[Any]:
            if not _runtime.is_active():
                return submit(executor, fn, *args, **kwargs)
            token = ("submit", object())
            _runtime.handoff_release(token)
            return submit(executor, _run_after_submit, token, fn, *args, **kwargs)

        self._patch_pipes()
        self._patch(Future, "set_result", future_set_result)
        self._patch(Future, "set_exception", future_set_exception)
        self._patch(Future, "result", future_result)
        self._patch(Future, "exception", future_exception)
        self._patch(concurrent.futures.ThreadPoolExecutor, "submit", executor_submit)

    def _patch_pipes(self) -> None:
        connection = multiprocessing.connection._ConnectionBase
        for name in ("send", "send_bytes"):
            self._patch(connection, name, _releasing(connection.__dict__[name]))
        for name in ("recv", "recv_bytes", "recv_bytes_into"):
            self._patch(connection, name, _acquiring(connection.__dict__[name]))

    def uninstall(self) -> None:
        """Undo :meth:`install`, newest patch first."""
        while self._saved:
            owner, name, original = self._saved.pop()
            setattr(owner, name, original)


def _releasing(send: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(send)
    def sending(connection: object, *args: Any, **kwargs: Any) -> Any:
        if _runtime.is_active():
            _runtime.handoff_release(_PIPES)
        return send(connection, *args, **kwargs)

    return sending


def _acquiring(recv: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(recv)
    def receiving(connection: object, *args: Any, **kwargs: Any) -> Any:
        received = recv(connection, *args, **kwargs)
        if _runtime.is_active():
            _runtime.handoff_acquire(_PIPES)
        return received

    return receiving
