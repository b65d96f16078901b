"""The contract between the public Executor and its backends.

The Executor turns every call (``submit``, each chunk of ``map``/``imap``) into a
``Task``; a backend runs tasks and reports back through the three methods of
``Task`` alone: ``start`` (is it still wanted?), ``finish`` (one outcome per call) and
``fail`` (the whole task failed: crash, timeout, kill, serialisation). A new backend is
a small subclass of ``Backend``; nothing else in fermion knows how it works.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, ClassVar

__all__ = ["Backend", "Call", "Outcome", "Task", "describe_callable"]

#: The arguments of one call of the task's function.
Call = tuple[tuple[Any, ...], dict[str, Any]]
#: What one call gave: ``(True, value)`` or ``(False, exception)``.
Outcome = tuple[bool, Any]

_task_ids = itertools.count(1)


def describe_callable(fn: Callable[..., Any]) -> str:
    """A short, human name for a function, for error messages (``module.qualname``)."""
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}"


class Task:
    """One unit of work handed to a backend: a function and one or more calls of it.

    ``batch=False`` (``submit``): one call; ``future`` is the user's future and receives
    the value or the exception itself. ``batch=True`` (chunks of ``map``/``imap``):
    ``future`` is internal and receives the list of outcomes, one per call, so that one
    failing item does not hide the others.
    """

    __slots__ = ("batch", "calls", "fn", "future", "id", "timeout")

    def __init__(
        self,
        fn: Callable[..., Any],
        calls: Sequence[Call],
        *,
        batch: bool,
        timeout: float | None = None,
        future: Future[Any] | None = None,
    ) -> None:
        if not batch and len(calls) != 1:
            raise ValueError(f"a non-batch task holds exactly one call, not {len(calls)}")
        self.id = next(_task_ids)
        self.fn = fn
        self.calls = calls
        self.batch = batch
        self.timeout = timeout
        self.future: Future[Any] = future if future is not None else Future()

    def describe(self) -> str:
        """E.g. ``"task 17 (mymodule.f, 1 call)"``, for error messages."""
        n = len(self.calls)
        return f"task {self.id} ({describe_callable(self.fn)}, {n} call{'s' if n != 1 else ''})"

    def start(self) -> bool:
        """Mark the task running; False if it was cancelled and must be skipped."""
        return self.future.set_running_or_notify_cancel()

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Report one outcome per call."""
        if self.future.done():
            return
        if self.batch:
            self.future.set_result(list(outcomes))
            return
        ok, value = outcomes[0]
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)

    def fail(self, exc: BaseException) -> None:
        """The whole task failed before it could report per-call outcomes."""
        if not self.future.done():
            self.future.set_exception(exc)

    def __repr__(self) -> str:
        return f"<Task {self.describe()} state={self.future._state}>"


class Backend(ABC):
    """Runs tasks. Thread-safe: ``submit``/``kill`` may be called from any thread."""

    #: The name users pass as ``Executor(backend=...)``.
    name: ClassVar[str]

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many tasks can run at once."""

    @abstractmethod
    def submit(self, task: Task) -> None:
        """Queue a task. The backend calls ``task.start()`` before running it."""

    def kill(self, task: Task) -> bool:
        """Stop a running task so that it fails with TaskKilledError.

        Returns False where the backend cannot (the default).
        """
        return False

    @abstractmethod
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; with ``cancel_futures`` cancel the queued ones;
        with ``wait`` return only once running tasks are done and workers are gone."""
