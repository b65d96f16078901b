"""The ``serial`` backend: every task runs in the caller's thread, inside ``submit``.

Like loky's sequential backend and joblib's ``n_jobs=1``: no thread, no process, so
debuggers, profilers and ``print`` behave as in a plain loop. ``submit`` returns a
future that is already done.

A task timeout cannot stop a function running in the caller's own thread. Here it
means: a task that ran longer than its timeout fails with TaskTimeoutError once it
returns (its result is dropped), so that code written against the timeout behaves the
same on every backend; it does not cut the task short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from fermion.errors import InitializerError
from fermion.executors._base import Backend, Task, refuse_if_unusable
from fermion.executors._calls import run_calls
from fermion.executors._initializer import check_initializer, run_initializer

__all__ = ["SerialBackend"]


class SerialBackend(Backend):
    """Runs each task at once, in the thread that submits it. ``workers`` is always 1.

    ``initializer(*initargs)`` runs in each thread that submits, before its first task
    there (that thread is the worker); if it raises, the task fails with
    InitializerError and the backend is broken: ``submit`` raises it from then on.
    """

    name: ClassVar[str] = "serial"

    def __init__(
        self,
        workers: int | None = None,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
    ) -> None:
        # Any worker count is accepted so that code can switch backends by name alone.
        del workers
        self._initargs = check_initializer(initializer, initargs, self.name)
        self._initializer = initializer
        self._initialized = threading.local()
        self._broken: InitializerError | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def workers(self) -> int:
        return 1

    @property
    def broken(self) -> InitializerError | None:
        return self._broken

    def submit(self, task: Task) -> None:
        with self._lock:
            refuse_if_unusable(self._broken, self._closed, "the serial backend")
        if self._initializer is not None and not getattr(self._initialized, "done", False):
            error = run_initializer(self._initializer, self._initargs)
            if error is not None:
                with self._lock:
                    if self._broken is None:
                        self._broken = InitializerError.from_exception(
                            error, "the initializer of the serial backend"
                        )
                    broken = self._broken
                task.fail(broken.fresh())
                return
            self._initialized.done = True
        if not task.start():
            return
        started = time.monotonic()
        try:
            outcomes = run_calls(task)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: the caller's own
            task.fail(exc)
            raise
        elapsed = time.monotonic() - started
        if task.timeout is not None and elapsed > task.timeout:
            task.fail(
                task.timed_out(
                    self.name,
                    "the serial backend runs tasks in the caller's thread and cannot stop "
                    "them early, so the result was dropped",
                    took=elapsed,
                )
            )
            return
        task.finish(outcomes)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # Nothing is ever queued or running in the background.
        with self._lock:
            self._closed = True
