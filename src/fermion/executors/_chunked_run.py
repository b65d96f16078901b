"""One ``map``/``imap`` call: inputs cut into chunks, chunks sent to a backend, results
handed back in order or as they come.

Who does what:

- The **consumer** (the thread iterating the results) pulls inputs from a lazy source,
  at most ``buffersize`` beyond what it has consumed, so an endless generator is read
  only as fast as results are used (bounded memory). Inputs are only ever read in the
  consumer's thread.
- **Dispatch** (``_pump``) turns pulled inputs into chunk tasks and submits them, with
  at most ``2 * workers`` chunks in flight so that the chunk planner can size later
  chunks from measured ones. ``workers`` is read from the backend as the run goes on
  (``auto`` changes it when it commits to a backend). It runs in whichever thread has something to dispatch:
  the caller of ``map`` at first, then the thread completing a chunk (a done-callback).
  A flag makes it non-reentrant, so the serial backend, which runs a chunk inside
  ``submit``, loops instead of recursing.
- **Completion** (``_task_done``, a done-callback) records the chunk's outcomes and
  duration, counts progress, and wakes the consumer.

A chunk whose worker crashed (WorkerCrashedError) is retried item by item once, so
that only the item that killed the worker fails; the other items of that chunk may
therefore run twice.

No reference cycles: a chunk task's done-callback is the run's bound method and the
run finds the task by its future, so once a chunk is done nothing refers to its task
and its arguments are freed at once, not at the garbage collector's next pass.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any, cast

from fermion.errors import WorkerCrashedError
from fermion.executors._base import BatchOutcomes, Outcome, PositionalCalls, Task
from fermion.executors._chunking import ChunkPlanner
from fermion.executors._progress import ProgressReporter

__all__ = ["ChunkedRun"]

#: Longest single wait of the consumer. Wake-ups come from notifications; the slice
#: only bounds how late Ctrl-C is seen, since on some builds (free-threaded 3.13t) a
#: signal does not interrupt an untimed Condition.wait in the main thread.
_SIGNAL_SLICE = 0.25


class _Chunk:
    """Consecutive items sent as one task (or, after a crash, one task per item)."""

    __slots__ = (
        "crash",
        "done",
        "error",
        "outcomes",
        "retried",
        "size",
        "split_left",
        "submitted_at",
    )

    def __init__(self, size: int) -> None:
        self.size = size
        self.submitted_at = time.monotonic()
        self.done = False
        self.error: BaseException | None = None  # the whole chunk failed with this
        self.outcomes: Sequence[Outcome] | None = None
        self.crash: BaseException | None = None  # set once the chunk is retried per item
        self.retried: list[Outcome] | None = None  # the outcomes of those retries
        self.split_left = 0


class ResultIterator(itertools.chain[Any]):
    """The results of a map/imap: each chunk's list of values is handed on at C speed
    (a generator would resume once per item); ``close()`` ends the iteration as a
    generator's would."""

    __slots__ = ("_source",)
    _source: Generator[Iterable[Any], None, None]

    def close(self) -> None:
        """Stop: chunks not started are cancelled and nothing more is sent."""
        self._source.close()


def _handed_over(values: list[Any]) -> Iterator[Any]:
    """The values in order, each taken out of the list as it is yielded: a result the
    consumer has dropped is freed at once, as the standard ``map`` frees each future it
    yields (CPython's test_free_reference), not when its whole chunk is consumed.
    Still at C speed: about 25 ns per item more than iterating the list."""
    values.reverse()
    return map(list.pop, itertools.repeat(values, len(values)))


class ChunkedRun:
    """The state of one map/imap call; thread-safe, one lock."""

    def __init__(
        self,
        fn: Callable[..., Any],
        inputs: Iterable[Any],
        *,
        unpack: bool,
        submit: Callable[[Task], None],
        workers: Callable[[], int],
        eager: bool,
        ordered: bool,
        chunksize: int | None,
        buffersize: int | None,
        task_timeout: float | None,
        progress: ProgressReporter | None,
        on_settled: Callable[[ChunkedRun], None],
        total: int | None = None,
    ) -> None:
        self._fn = fn
        self._total = total  # the inputs' count, when the caller's iterable has a length
        self._submit = submit
        self._read_workers = workers
        self._workers = max(1, workers())
        self._ordered = ordered
        self._chunksize = chunksize
        self._task_timeout = task_timeout
        self._progress = progress
        self._on_settled = on_settled
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._max_in_flight = 2 * self._workers
        self._unpack = unpack
        # Inputs read and not sent yet: self._items[self._cursor:]. Each is one call's
        # argument, or the tuple of its arguments with ``unpack``.
        self._items: list[Any] = []
        self._cursor = 0
        self._source: Iterator[Any] | None = None
        self._buffersize = buffersize
        if eager:
            self._items = inputs if isinstance(inputs, list) else list(inputs)
            self._exhausted = True
            self._planner = ChunkPlanner(self._workers)
        else:
            self._source = iter(inputs)
            self._exhausted = False
            if buffersize is None:
                raise ValueError("a lazy run needs a buffersize")
            self._planner = ChunkPlanner(self._workers, max_size=self._lazy_max_size())
        self._pulled = 0
        self._sent = 0  # items sent in chunks: the input index of the next one
        self._consumed = 0
        self._consuming = 0  # items of the chunk being yielded now
        self._source_error: BaseException | None = None
        self._order: deque[_Chunk] = deque()  # ordered: submitted chunks, input order
        self._ready: deque[_Chunk] = deque()  # unordered: finished chunks
        self._retry: deque[Task] = deque()
        # Chunk tasks in flight by their future, with their chunk and, for the items of a
        # chunk retried one by one, the item's index in the chunk.
        self._tasks: dict[Future[Any], tuple[Task, _Chunk, int | None]] = {}
        self._in_flight = 0
        self._pumping = False
        self._pumper: int | None = None
        self._closed = False  # consumer gone: nothing more is sent
        self._sealed = False  # executor shut down: no more inputs are read
        self._flushing = False  # send everything held now, ignoring the limits
        self._dropped = False  # shutdown(cancel_futures=True) dropped unsent inputs
        self._settled = False

    # -- the consumer ---------------------------------------------------------------

    def results(self, deadline: float | None, *, return_exceptions: bool = False) -> ResultIterator:
        """The results; a call's exception is raised when reached (which ends the
        iteration), or yielded in its place with ``return_exceptions``. ``deadline``
        is in ``time.monotonic()`` seconds."""
        source = self._chunk_results(deadline, return_exceptions)
        results = cast(ResultIterator, ResultIterator.from_iterable(source))
        results._source = source
        return results

    def _chunk_results(
        self, deadline: float | None, return_exceptions: bool
    ) -> Generator[Iterable[Any], None, None]:
        """One iterable of results per chunk, in the order they are to be yielded."""
        try:
            while not self._closed:
                chunk = self._next_chunk(deadline)
                if chunk is None:
                    return
                if chunk.error is not None:
                    if not return_exceptions:
                        raise chunk.error
                    yield itertools.repeat(chunk.error, chunk.size)
                    continue
                outcomes = chunk.outcomes
                assert outcomes is not None
                if type(outcomes) is BatchOutcomes and not outcomes.errors:
                    yield _handed_over(outcomes.values)  # the common case
                else:
                    yield self._outcome_values(outcomes, return_exceptions)
        finally:
            self.close()

    def _outcome_values(
        self, outcomes: Sequence[Outcome], return_exceptions: bool
    ) -> Iterator[Any]:
        for ok, value in outcomes:
            if not ok and not return_exceptions:
                self.close()  # the iteration ends here, as a generator's would
                raise value
            yield value

    def start(self) -> None:
        """Read the first inputs and send the first chunks (in the caller's thread)."""
        self._fill()
        self._pump()

    def _next_chunk(self, deadline: float | None) -> _Chunk | None:
        with self._lock:
            self._consumed += self._consuming
            self._consuming = 0
        while True:
            self._fill()
            self._pump()
            with self._cond:
                chunk = self._wait_for_chunk_locked(deadline)
                if chunk is not self._PUMP:
                    return chunk

    #: What ``_wait_for_chunk_locked`` returns when the consumer must send chunks first.
    _PUMP = _Chunk(0)

    def _wait_for_chunk_locked(self, deadline: float | None) -> _Chunk | None:
        while True:
            if self._ordered:
                if self._order and self._order[0].done:
                    chunk = self._order.popleft()
                    self._consuming = chunk.size
                    return chunk
            elif self._ready:
                chunk = self._ready.popleft()
                self._consuming = chunk.size
                return chunk
            if self._nothing_more_locked():
                self._raise_end_reason_locked()
                return None
            if (
                not self._pumping
                and not self._in_flight
                and (self._has_pending() or self._retry)
                and not self._closed
            ):
                # Nothing in flight to send the rest as it completes: the consumer does.
                return self._PUMP
            timeout = _SIGNAL_SLICE
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"map/imap of {getattr(self._fn, '__qualname__', self._fn)!r}: "
                        f"results not ready before the deadline of the call"
                    )
                timeout = min(left, _SIGNAL_SLICE)
            self._cond.wait(timeout)

    def _nothing_more_locked(self) -> bool:
        if self._has_pending() or self._retry or self._in_flight:
            return False
        if self._ordered and self._order:
            return False
        return self._exhausted or self._sealed or self._closed

    def _raise_end_reason_locked(self) -> None:
        """No more results: raise why, if the run ended early, else return."""
        if self._source_error is not None:
            error, self._source_error = self._source_error, None
            raise error
        if self._dropped:
            raise CancelledError(
                "the executor was shut down with cancel_futures=True before these inputs were run"
            )
        if self._sealed and not self._exhausted:
            raise RuntimeError(
                f"the executor was shut down while imap was reading its input; "
                f"items after the first {self._pulled} were not run"
            )

    def _fill(self) -> None:
        """Pull inputs from a lazy source, up to ``buffersize`` beyond those consumed."""
        source = self._source
        if source is None:
            return
        while True:
            with self._lock:
                if self._exhausted or self._closed or self._sealed:
                    return
                assert self._buffersize is not None
                room = self._buffersize - (self._pulled - self._consumed)
            if room <= 0:
                return
            taken: list[Any] = []
            error: BaseException | None = None
            exhausted = False
            try:
                for _ in range(min(room, 256)):
                    taken.append(next(source))
            except StopIteration:
                exhausted = True
            except Exception as exc:  # the input iterable failed: raised when reached
                error = exc
                exhausted = True
            with self._lock:
                if self._closed or self._sealed:
                    return
                if self._cursor > 1024 and self._cursor * 2 > len(self._items):
                    del self._items[: self._cursor]
                    self._cursor = 0
                self._items.extend(taken)
                self._pulled += len(taken)
                if exhausted:
                    self._exhausted = True
                    self._source_error = error
                    self._cond.notify_all()
            self._pump()

    # -- dispatch -------------------------------------------------------------------

    def _pump(self) -> None:
        """Send every chunk that may be sent now. Never reentrant; never holds the lock
        while calling the backend."""
        with self._lock:
            if self._pumping:
                return
            self._pumping = True
            self._pumper = threading.get_ident()
        settled = False
        try:
            while True:
                workers = max(1, self._read_workers())  # outside the lock: the backend's
                with self._lock:
                    if workers != self._workers:
                        self._set_workers_locked(workers)
                    task = self._next_task_locked()
                    if task is None:
                        self._pumping = False
                        self._pumper = None
                        self._cond.notify_all()
                        settled = self._settle_locked()
                        break
                try:
                    self._submit(task)
                except Exception as exc:  # e.g. the backend was shut down meanwhile
                    task.fail(exc)
        except BaseException:
            with self._lock:
                self._pumping = False
                self._pumper = None
                self._cond.notify_all()
            raise
        if settled:
            self._on_settled(self)

    def _set_workers_locked(self, workers: int) -> None:
        self._workers = workers
        self._max_in_flight = 2 * workers
        self._planner.workers = workers
        if self._buffersize is not None:
            self._planner.max_size = self._lazy_max_size()

    def _lazy_max_size(self) -> int:
        assert self._buffersize is not None
        return max(1, self._buffersize // (2 * self._workers))

    def _next_task_locked(self) -> Task | None:
        if self._closed:
            return None
        if self._retry:  # counted in flight since the split; sent first, past the limit
            return self._retry.popleft()
        limited = not self._flushing
        if limited and self._in_flight >= self._max_in_flight:
            return None
        pending = len(self._items) - self._cursor
        if not pending:
            return None
        known_end = self._exhausted or self._sealed
        remaining = pending if known_end else None
        size = self._chunksize or self._planner.next_size(remaining)
        if pending < size and limited and not known_end and self._in_flight >= self._workers:
            return None  # wait for more inputs: workers are busy anyway
        size = min(size, pending)
        self._planner.chunk_issued()
        start = self._cursor
        self._cursor += size
        calls = PositionalCalls(self._items[start : self._cursor], unpack=self._unpack)
        chunk = _Chunk(size)
        task = Task(
            self._fn,
            calls,
            batch=True,
            timeout=self._task_timeout,
            first_item=self._sent,
            planned=not self._chunksize,
        )
        self._sent += size
        if self._total is not None:
            task.left = max(0, self._total - self._sent)
        elif known_end:
            task.left = pending - size
        self._tasks[task.future] = (task, chunk, None)
        if self._ordered:
            self._order.append(chunk)
        self._in_flight += 1
        task.future.add_done_callback(self._task_done)
        return task

    # -- completion -----------------------------------------------------------------

    def _task_done(self, future: Future[Any]) -> None:
        finished_at = time.monotonic()
        cancelled = future.cancelled()
        error: BaseException | None = None if cancelled else future.exception()
        outcomes = None if cancelled or error is not None else future.result()
        completed = 0
        with self._lock:
            task, chunk, index = self._tasks.pop(future)
            if cancelled:
                error = CancelledError(f"{task.describe()} was cancelled")
            self._in_flight -= 1
            if index is not None:  # one item of a chunk retried after a crash
                if error is not None and task.started_at is None and chunk.crash is not None:
                    error = chunk.crash  # the retry could not even be sent
                assert chunk.retried is not None
                if error is not None:
                    chunk.retried[index] = (False, error)
                else:
                    assert outcomes is not None
                    chunk.retried[index] = outcomes[0]
                chunk.split_left -= 1
                if chunk.split_left == 0:
                    completed = self._chunk_done_locked(chunk)
            elif isinstance(error, WorkerCrashedError) and chunk.size > 1 and not self._closed:
                self._split_locked(chunk, task, error)
            else:
                if error is not None:
                    chunk.error = error
                else:
                    chunk.outcomes = outcomes
                    started = task.started_at if task.started_at is not None else chunk.submitted_at
                    self._planner.record(chunk.size, finished_at - started)
                completed = self._chunk_done_locked(chunk)
            self._cond.notify_all()
            pump = (
                not self._pumping and bool(self._has_pending() or self._retry) and not self._closed
            )
            settled = not pump and self._settle_locked()
        if completed and self._progress is not None:
            self._progress.advance(completed)
        if pump:
            self._pump()
        elif settled:
            self._on_settled(self)

    def _chunk_done_locked(self, chunk: _Chunk) -> int:
        chunk.done = True
        if not self._ordered:
            self._ready.append(chunk)
        return chunk.size

    def _has_pending(self) -> bool:
        return self._cursor < len(self._items)

    def _drop_pending_locked(self) -> None:
        self._items = []
        self._cursor = 0

    def _split_locked(self, chunk: _Chunk, task: Task, crash: BaseException) -> None:
        chunk.crash = crash
        chunk.retried = [(False, crash)] * chunk.size
        chunk.outcomes = chunk.retried
        chunk.split_left = chunk.size
        for index in range(len(task.calls)):
            calls = task.calls[index : index + 1]
            first = None if task.first_item is None else task.first_item + index
            retry = Task(self._fn, calls, batch=True, timeout=self._task_timeout, first_item=first)
            self._tasks[retry.future] = (retry, chunk, index)
            retry.future.add_done_callback(self._task_done)
            self._retry.append(retry)
        self._in_flight += chunk.size

    def _settle_locked(self) -> bool:
        """True once, when the run needs the backend no more."""
        if self._settled:
            return False
        if self._closed or (
            (self._exhausted or self._sealed)
            and not self._has_pending()
            and not self._retry
            and not self._in_flight
        ):
            self._settled = True
            return True
        return False

    # -- ending -----------------------------------------------------------------------

    def close(self) -> None:
        """The consumer is gone: send nothing more and cancel the chunks not started."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drop_pending_locked()
            tasks = [task for task, _, _ in self._tasks.values()]
            self._retry.clear()
            self._cond.notify_all()
            settled = self._settle_locked()
        for task in tasks:
            task.future.cancel()
        if self._progress is not None:
            self._progress.close()
        if settled:
            self._on_settled(self)

    def flush(self) -> None:
        """Executor shutdown: read no more inputs, send every input already read now.

        Returns once everything is sent, so the backend may be shut down after it.
        """
        with self._lock:
            self._sealed = True
            self._flushing = True
        self._pump()
        me = threading.get_ident()
        with self._cond:
            while self._pumping and self._pumper != me:
                self._cond.wait(_SIGNAL_SLICE)

    def drop_unsent(self) -> None:
        """Executor shutdown with cancel_futures: inputs not yet sent are cancelled."""
        with self._lock:
            self._sealed = True
            if self._has_pending() or self._retry:
                self._dropped = True
            self._drop_pending_locked()
            retries = list(self._retry)
            self._retry.clear()
            self._cond.notify_all()
            settled = self._settle_locked()
        for task in retries:
            task.future.cancel()
        if settled:
            self._on_settled(self)
