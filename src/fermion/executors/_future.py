"""The future every fermion executor returns: ``concurrent.futures.Future``, with waits
that let Ctrl-C and SIGTERM through on free-threaded builds.

On a free-threaded CPython (3.13t) a signal that arrives while the main thread is
entering an untimed lock wait is not acted on until that wait ends: the Python-level
handler (``KeyboardInterrupt``, or a SIGTERM handler that cleans up before the process
dies) runs only once the lock is released. Measured here on 3.13.5t: a SIGTERM sent
just as the main thread parked on a lock waited for the lock in 13 of 40 runs; 0 of 40
on 3.11, 3.12 and 3.13 with the GIL. For ``future.result()`` that means a program
blocked on a long task ignores Ctrl-C, or a ``kill``, until the task ends.

So in the main thread of such a build, ``result`` and ``exception`` wait in slices of
``SIGNAL_CHECK_S``: a timed wait that ends lets the interpreter run the pending handler.
Elsewhere (other threads, which never run signal handlers, and builds with the GIL)
they are the standard methods, unchanged; so are they under ``fermion check``, whose
checked conditions wait in slices already (and see an unbounded wait, which a sliced
wait with a timeout would hide from the deadlock check).

Done-callbacks run in whichever thread completes the future: a pool's own thread, a
worker thread, a backend's I/O thread. The standard library logs an ``Exception`` from a
callback and goes on, but lets any other ``BaseException`` (a ``SystemExit`` or
``KeyboardInterrupt`` the callback raised) out, skipping the callbacks after it and
ending that thread: the process pool's thread then died with its tasks still running.
Here every callback runs, and outside the main thread every exception a callback raises
is logged the standard library's way (logger ``concurrent.futures``, "exception calling
callback for ..."), since no signal is ever delivered there. In the main thread a
``BaseException`` that is not an ``Exception`` (the user's Ctrl-C) is raised again once
the other callbacks have run, as the standard library would have.
"""

from __future__ import annotations

import _thread
import concurrent.futures
import contextlib
import logging
import sysconfig
import threading
import time
from typing import Any, TypeVar

__all__ = ["SIGNAL_CHECK_S", "Future", "slices_waits"]

T = TypeVar("T")

#: How long a sliced wait blocks before the interpreter may run a pending signal handler.
SIGNAL_CHECK_S = 0.05

# The build, not whether the GIL is on now: its locks are the build's either way. Read
# here rather than from fermion.measure, which imports the executors.
_FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
_STANDARD_CONDITION = threading.Condition  # before any checker replaces it
_LOGGER = logging.getLogger("concurrent.futures")  # where the standard library logs them


def slices_waits() -> bool:
    """Whether a wait in this thread must be sliced so that signals are acted on."""
    return _FREE_THREADED_BUILD and threading.current_thread() is threading.main_thread()


class Future(concurrent.futures.Future[T]):
    """A ``concurrent.futures.Future`` whose waits in the main thread stay interruptible
    on free-threaded builds, and whose done-callbacks cannot end the thread that
    completes it (see the module docstring). Named ``Future`` so that its repr,
    and the messages that quote it (``InvalidStateError``), are the standard library's."""

    def result(self, timeout: float | None = None) -> T:
        self._wait_in_slices(timeout)
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait_in_slices(timeout)
        return super().exception(timeout)

    def _invoke_callbacks(self) -> None:
        """Run every done-callback; none can end the thread completing the future (see
        the module docstring)."""
        interrupt: BaseException | None = None
        for callback in self._done_callbacks:  # type: ignore[attr-defined]
            try:
                callback(self)
            except Exception:
                _LOGGER.exception("exception calling callback for %r", self)
            except BaseException as exc:
                if interrupt is None and threading.current_thread() is threading.main_thread():
                    interrupt = exc
                else:
                    _LOGGER.exception("exception calling callback for %r", self)
        if interrupt is not None:
            try:
                raise interrupt
            finally:
                interrupt = None

    def _wait_in_slices(self, timeout: float | None) -> None:
        """Where waits must be sliced, return once done or once ``timeout`` has passed
        (the standard wait that follows then returns at once or raises TimeoutError, as
        it would have); elsewhere return at once.

        The future's Condition is held only to register and unregister a wake-up, and
        through its C-level lock: a signal handler that raises between the acquire of
        ``with condition:`` (whose ``__enter__`` is Python code) and its body would
        leave the lock held, and the thread completing the future would wait for ever.
        The wait itself is on a private lock that the future's completion releases.
        """
        # The state is read without the lock (done() takes it the unsafe way).
        if not _FREE_THREADED_BUILD or self._state in _DONE_STATES or not slices_waits():
            return  # the cheap answers first: result() of a done future is common
        condition: Any = self._condition
        if type(condition) is not _STANDARD_CONDITION:
            return
        lock = condition._lock  # type: ignore[attr-defined]
        waiters: list[Any] = self._waiters
        deadline = None if timeout is None else time.monotonic() + timeout
        wakeup = _Wakeup()
        with lock:
            if self._state in _DONE_STATES:
                return
            waiters.append(wakeup)
        try:
            while self._state not in _DONE_STATES:
                left = SIGNAL_CHECK_S if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return
                wakeup.wait(min(left, SIGNAL_CHECK_S))
        finally:
            with lock, contextlib.suppress(ValueError):
                waiters.remove(wakeup)


class _Wakeup:
    """A waiter in the future's ``_waiters`` list (the protocol of concurrent.futures'
    ``wait``): its completion releases a private lock, which never blocks the thread
    completing it. A cancel does not call waiters; the sliced wait sees it by the
    state within a slice."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()

    def wait(self, seconds: float) -> None:
        if self._lock.acquire(True, seconds):
            self._lock.release()  # stay woken: later waits return at once

    def _wake(self, _future: object) -> None:
        with contextlib.suppress(RuntimeError):  # woken already
            self._lock.release()

    add_result = add_exception = add_cancelled = _wake


_DONE_STATES = (
    concurrent.futures._base.CANCELLED,
    concurrent.futures._base.CANCELLED_AND_NOTIFIED,
    concurrent.futures._base.FINISHED,
)
