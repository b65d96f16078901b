"""The contract between the public Executor and its backends.

The Executor turns every call (``submit``, each chunk of ``map``/``imap``) into a
``Task``; a backend runs tasks and reports back through the three methods of
``Task`` alone: ``start`` (is it still wanted?), ``finish`` (one outcome per call) and
``fail`` (the whole task failed: crash, timeout, kill, serialisation). A new backend is
a small subclass of ``Backend``; nothing else in fermion knows how it works.
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Future
from typing import Any, ClassVar, overload

from fermion.errors import (
    FermionError,
    TaskTimeoutError,
    name_call,
    name_items,
    refused_after_shutdown,
    timed_out,
)
from fermion.executors import _future

__all__ = [
    "Backend",
    "BatchOutcomes",
    "Call",
    "Outcome",
    "PositionalCalls",
    "Task",
    "describe_callable",
    "refuse_if_unusable",
]

#: The arguments of one call of the task's function.
Call = tuple[tuple[Any, ...], dict[str, Any]]
#: What one call gave: ``(True, value)`` or ``(False, exception)``.
Outcome = tuple[bool, Any]

_task_ids = itertools.count(1)

#: The keyword arguments of a call that has none. Shared, so never mutate it.
NO_KWARGS: dict[str, Any] = {}


class PositionalCalls(Sequence[Call]):
    """Calls with positional arguments only, stored compactly (the chunks of map/imap).

    ``items`` holds one entry per call: its single argument (``unpack=False``) or the
    tuple of its arguments (``unpack=True``). It reads like any ``Sequence[Call]``
    (``len``, indexing, iteration give ``(args, kwargs)`` pairs) but keeps one list
    instead of two tuples per call: a 100,000-item map would otherwise create 200,000
    long-lived tuples, and the garbage collector's passes over them cost more than the
    work itself. It pickles as the list.
    """

    __slots__ = ("items", "unpack")

    def __init__(self, items: list[Any], *, unpack: bool) -> None:
        self.items = items
        self.unpack = unpack

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> Call: ...
    @overload
    def __getitem__(self, index: slice) -> PositionalCalls: ...
    def __getitem__(self, index: int | slice) -> Call | PositionalCalls:
        if isinstance(index, slice):
            return PositionalCalls(self.items[index], unpack=self.unpack)
        item = self.items[index]
        return (item if self.unpack else (item,)), NO_KWARGS

    def __iter__(self) -> Iterator[Call]:
        args = iter(self.items) if self.unpack else zip(self.items, strict=False)
        return zip(args, itertools.repeat(NO_KWARGS), strict=False)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_calls, (self.items, self.unpack))

    def __repr__(self) -> str:
        return f"<PositionalCalls {len(self.items)} calls, unpack={self.unpack}>"


def _rebuild_calls(items: list[Any], unpack: bool) -> PositionalCalls:
    return PositionalCalls(items, unpack=unpack)


class BatchOutcomes(Sequence[Outcome]):
    """The outcomes of a batch, stored compactly: ``values`` holds one entry per call
    (None where it failed) and ``errors`` maps the index of each failed call to its
    exception. Reads like a list of ``(ok, value)`` pairs; a backend may pass it to
    ``Task.finish`` instead, which saves a tuple per call (see PositionalCalls for
    why that matters). Pickles as the list and the dict.
    """

    __slots__ = ("errors", "values")

    def __init__(self, values: list[Any], errors: dict[int, BaseException] | None = None) -> None:
        self.values = values
        self.errors: dict[int, BaseException] = errors if errors is not None else {}

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> Outcome: ...
    @overload
    def __getitem__(self, index: slice) -> list[Outcome]: ...
    def __getitem__(self, index: int | slice) -> Outcome | list[Outcome]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.values)))]
        if index < 0:
            index += len(self.values)
        value = self.values[index]  # IndexError as a list would
        error = self.errors.get(index)
        return (False, error) if error is not None else (True, value)

    def __iter__(self) -> Iterator[Outcome]:
        if not self.errors:
            return zip(itertools.repeat(True), self.values, strict=False)
        return (self[i] for i in range(len(self.values)))

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same outcomes, as the list it stands for."""
        if isinstance(other, BatchOutcomes):
            return self.values == other.values and self.errors == other.errors
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like the list it stands for

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchOutcomes, (self.values, self.errors))

    def __repr__(self) -> str:
        return f"<BatchOutcomes {len(self.values)} calls, {len(self.errors)} failed>"


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

    __slots__ = (
        "batch",
        "calls",
        "first_item",
        "fn",
        "future",
        "id",
        "left",
        "planned",
        "started_at",
        "timeout",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        calls: Sequence[Call],
        *,
        batch: bool,
        timeout: float | None = None,
        future: Future[Any] | None = None,
        first_item: int | None = None,
        planned: bool = False,
    ) -> None:
        if not batch and len(calls) != 1:
            raise ValueError(f"a non-batch task holds exactly one call, not {len(calls)}")
        self.id = next(_task_ids)
        self.fn = fn
        self.calls = calls
        self.batch = batch
        self.timeout = timeout
        self.future: Future[Any] = future if future is not None else _future.Future()
        #: The index in the user's input of the first call (a chunk of map/imap), so
        #: that errors name the item the user passed; None for a submitted call.
        self.first_item = 0 if batch and first_item is None else first_item
        #: A chunk whose size the chunk planner chose (it grows as calls are measured),
        #: not one the caller fixed (``chunksize``, or one call per ``task_timeout``).
        self.planned = planned
        #: Calls of the same map still to be handed over after this chunk, where the
        #: input's length is known (``auto`` judges the work left by it); else None.
        self.left: int | None = None
        #: ``time.monotonic()`` when ``start()`` marked the task running, else None.
        #: The chunk planner measures a chunk from here to its future's completion.
        self.started_at: float | None = None

    def describe(self) -> str:
        """E.g. ``"item 7 of the map (mymodule.f)"``, for error messages
        (``fermion.errors.name_items``)."""
        return name_items(describe_callable(self.fn), self.first_item, len(self.calls))

    def describe_one(self, index: int) -> str:
        """The call at ``index`` on its own, with its function: ``"item 8 of the map
        (mymodule.f)"``, or :meth:`describe` for a submitted call."""
        if not self.batch:
            return self.describe()
        first = None if self.first_item is None else self.first_item + index
        return name_items(describe_callable(self.fn), first, 1)

    def timed_out(self, backend: str, outcome: str, took: float | None = None) -> TaskTimeoutError:
        """The error of this task, which ran past its timeout on *backend*; *outcome*
        says what the backend did about it (``fermion.errors.timed_out``)."""
        assert self.timeout is not None, "only a task with a timeout times out"
        return timed_out(self.describe(), self.timeout, backend, outcome, took)

    def describe_call(self, index: int) -> str:
        """The call at ``index`` of this task: ``"item 8 of the map"`` or ``"the call"``."""
        return name_call(self.first_item, index)

    def start(self) -> bool:
        """Mark the task running; False if it was cancelled and must be skipped."""
        if self.future.set_running_or_notify_cancel():
            self.started_at = time.monotonic()
            return True
        return False

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Report one outcome per call."""
        if self.future.done():
            return
        if self.batch:
            kept = outcomes if isinstance(outcomes, BatchOutcomes) else list(outcomes)
            self.future.set_result(kept)
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
    """Runs tasks. Thread-safe: ``submit``/``kill`` may be called from any thread.

    The Executor relies on three more rules:

    - ``submit`` does not block, and may be called from inside a done-callback of a
      task's future, i.e. from whichever thread called ``finish``/``fail`` (the
      Executor submits the next chunk of a ``map`` as the previous one completes).
      So a backend must not hold its own lock while it calls ``finish``/``fail``.
    - ``submit`` after ``shutdown`` raises RuntimeError("cannot schedule new futures
      after shutdown").
    - The constructor is called as ``cls(workers=workers, **options)``, with
      ``workers`` None (the backend's default) or a positive int, and raises
      TypeError naming any option it does not know.
    """

    #: The name users pass as ``Executor(backend=...)``.
    name: ClassVar[str]

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many tasks can run at once."""

    @abstractmethod
    def submit(self, task: Task) -> None:
        """Queue a task. The backend calls ``task.start()`` before running it."""

    @property
    def broken(self) -> BrokenExecutor | None:
        """Why the backend cannot run tasks any more (its initializer raised, say),
        or None. Once set, ``submit`` raises it."""
        return None

    def kill(self, task: Task) -> bool:
        """Stop a running task so that it fails with TaskKilledError.

        Returns False where the backend cannot (the default).
        """
        return False

    @abstractmethod
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; with ``cancel_futures`` cancel the queued ones;
        with ``wait`` return only once running tasks are done and workers are gone."""

    def terminate(self, reason: str = "terminated") -> None:
        """Stop now (Ctrl-C): cancel the queued tasks and stop the running ones where the
        backend can, failing them with a TaskKilledError that gives *reason*; do not
        wait. The default cancels the queued tasks and leaves the running ones to end."""
        self.shutdown(wait=False, cancel_futures=True)


def refuse_if_unusable(broken: BaseException | None, closed: bool, subject: str) -> None:
    """What ``submit`` raises when *subject* cannot take work: why it broke (a fresh
    copy, so that each caller's traceback is its own), or that it was shut down."""
    if broken is not None:
        raise broken.fresh() if isinstance(broken, FermionError) else broken
    if closed:
        raise refused_after_shutdown(subject)
