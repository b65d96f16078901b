"""``fermion.Executor``: one concurrent.futures Executor over every backend."""

from __future__ import annotations

import concurrent.futures
import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

from fermion._costs._startup import note_executor_created
from fermion.errors import refused_after_shutdown
from fermion.executors._arguments import (
    check_buffersize,
    check_chunksize,
    check_timeout,
    check_workers,
)
from fermion.executors._base import Backend, Task, describe_callable
from fermion.executors._chunked_run import ChunkedRun
from fermion.executors._exit import interpreter_exiting, watch_exit
from fermion.executors._progress import ProgressArg, check_progress, make_progress
from fermion.executors._registry import check_options, load_backend

__all__ = ["Executor"]

T = TypeVar("T")

#: Per worker, how many items an auto-chunked imap may hold beyond those consumed.
_IMAP_ITEMS_PER_WORKER = 1024


class Executor(concurrent.futures.Executor):
    """Run functions concurrently on a backend: ``"serial"``, ``"threads"``,
    ``"processes"``, ``"dask"`` or ``"auto"`` (which measures the work and picks).

    A real ``concurrent.futures.Executor``: ``submit`` returns a standard Future
    (usable with ``as_completed`` and ``wait``), ``map`` and ``shutdown`` keep the
    standard semantics, and ``with Executor(...) as ex:`` shuts down on exit. Beyond
    the standard: automatic chunking in ``map``, streaming ``imap`` with bounded
    memory, per-task timeouts (``task_timeout``, ``schedule``), ``kill`` of a running
    task, and progress reporting.

    ``workers`` None means the backend's default. ``task_timeout`` (seconds) applies to
    every task unless a call gives its own. ``progress`` is the default of ``map`` and
    ``imap``: True for a bar on a terminal, or a callable ``(done, total)``. Other
    keyword arguments are options of the backend (e.g. ``start_method`` for
    processes); an unknown one raises TypeError.
    """

    def __init__(
        self,
        backend: str | type[Backend] = "auto",
        workers: int | None = None,
        *,
        task_timeout: float | None = None,
        progress: ProgressArg = False,
        **backend_options: Any,
    ) -> None:
        note_executor_created()  # what the program did before: see expected_worker_startup
        if isinstance(backend, type) and issubclass(backend, Backend):
            cls, name = backend, str(getattr(backend, "name", backend.__name__))
        else:
            cls, name = load_backend(backend), backend
        workers = check_workers(workers)
        self._task_timeout = check_timeout(task_timeout, "task_timeout")
        check_progress(progress, "progress")
        self._progress = progress
        check_options(cls, name, backend_options)
        self._backend: Backend = cls(workers=workers, **backend_options)  # type: ignore[call-arg]
        self._backend_name = name
        self._lock = threading.Lock()
        self._shutdown = False
        self._runs: set[ChunkedRun] = set()
        self._submitted: dict[Future[Any], Task] = {}
        watch_exit()
        # What futures and runs call back: nothing of them refers to the Executor, so
        # that an Executor dropped without shutdown is freed (below) while its futures
        # and map iterators live on, as the standard executors are.
        self._forget = functools.partial(_forget, self._lock, self._submitted)
        self._run_settled = functools.partial(_discard_run, self._lock, self._runs)
        # Dropped without shutdown: shut the backend down without waiting (as
        # ThreadPoolExecutor does), so that its threads or processes end once the work
        # submitted is done.
        self._finalizer = weakref.finalize(self, _release, self._lock, self._runs, self._backend)
        self._finalizer.atexit = False  # at exit the backends' own handlers decide

    # -- what it is -------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The backend instance running the tasks."""
        return self._backend

    @property
    def backend_name(self) -> str:
        """The backend's name, as passed (e.g. ``"threads"``)."""
        return self._backend_name

    @property
    def workers(self) -> int:
        """How many tasks can run at once."""
        return self._backend.workers

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else "running"
        return f"<fermion.Executor backend={self._backend_name!r} workers={self.workers} {state}>"

    # -- one task ---------------------------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)``; a Future of its result. The executor's
        ``task_timeout`` applies."""
        return self._send(fn, args, kwargs, self._task_timeout)

    def schedule(
        self,
        fn: Callable[..., T],
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Future[T]:
        """Like ``submit``, with a timeout for this task (pebble's name).

        ``timeout`` None means the executor's ``task_timeout``; ``math.inf`` means none.
        A task still running at its timeout fails with TaskTimeoutError.
        """
        seconds = self._resolve_task_timeout(timeout, "timeout")
        return self._send(fn, tuple(args), dict(kwargs or {}), seconds)

    def kill(self, future: Future[Any]) -> bool:
        """Stop the task behind ``future`` (from ``submit``/``schedule``).

        A running task fails with TaskKilledError: in ``processes`` its worker is
        killed and replaced; in ``threads`` the thread is interrupted on a best-effort
        basis (see the docs). A task not started yet is cancelled instead. Returns False
        when the task is already done or the backend cannot stop it.
        """
        with self._lock:
            task = self._submitted.get(future)
        if task is None or future.done():
            return False
        if future.cancel():
            return True
        return self._backend.kill(task)

    def _send(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Future[Any]:
        if not callable(fn):
            raise TypeError(
                f"the function to run must be callable, got {fn!r} ({type(fn).__name__})"
            )
        task = Task(fn, [(args, kwargs)], batch=False, timeout=timeout)
        with self._lock:
            self._check_open_locked()
            self._submitted[task.future] = task
        task.future.add_done_callback(self._forget)
        try:
            self._backend.submit(task)
        except BaseException:
            self._forget(task.future)
            raise
        return task.future

    def _check_open_locked(self) -> None:
        if self._shutdown:
            raise refused_after_shutdown(repr(self))
        if interpreter_exiting():
            raise RuntimeError(
                f"cannot schedule new futures after interpreter shutdown ({self!r}: the "
                "interpreter is exiting, so work submitted now might never run)"
            )

    # -- many tasks -------------------------------------------------------------------

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | str = "auto",
        task_timeout: float | None = None,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """``fn`` over the iterables, results in order: the standard ``Executor.map``.

        As in the standard library the inputs are read at once and the work starts at
        once; ``timeout`` is a deadline (seconds from this call) for the whole
        iteration, raising TimeoutError; an exception raised by a call is raised when
        the iteration reaches it. Different: ``chunksize="auto"`` groups items into
        chunks sized from measured task times (1 item per chunk when a task timeout
        applies, so that the timeout is per item). A chunk's results arrive together, so
        with ``timeout`` a result may be held back with a slower item of its chunk; pass
        ``chunksize=1`` for the standard library's per-result deadline (one task per
        item costs a round trip each: slow for long maps of quick calls).
        ``buffersize`` (as in Python 3.14) reads the inputs lazily instead, at most
        that many ahead of the consumer.
        """
        deadline = None if timeout is None else time.monotonic() + _positive(timeout, "timeout")
        chunks = check_chunksize(chunksize)
        buffer = check_buffersize(buffersize)
        seconds = self._resolve_task_timeout(task_timeout)
        unpack = len(iterables) != 1  # one iterable: each item is the argument
        inputs: Iterable[Any] = zip(*iterables, strict=False) if unpack else iterables[0]
        total = None
        if buffer is None:
            inputs = list(inputs)
            total = len(inputs)
        elif not unpack:
            total = _length(inputs)
        run = self._start_run(
            fn,
            inputs,
            unpack=unpack,
            eager=buffer is None,
            ordered=True,
            chunksize=chunks,
            buffersize=buffer,
            task_timeout=seconds,
            progress=self._progress,
            total=total,
        )
        return run.results(deadline)

    def imap(
        self,
        fn: Callable[[Any], T],
        iterable: Iterable[Any],
        *,
        ordered: bool = True,
        chunksize: int | str = "auto",
        buffersize: int | None = None,
        task_timeout: float | None = None,
        progress: ProgressArg = None,
        return_exceptions: bool = False,
    ) -> Iterator[T]:
        """Stream ``fn(item)`` for each item, reading ``iterable`` lazily.

        At most ``buffersize`` inputs are held beyond those whose results were
        consumed, so an endless generator works in bounded memory. The default is
        ``4 * workers * chunksize`` (``chunksize`` counted as 256 when "auto", which
        then caps chunks at ``buffersize / (2 * workers)`` items). ``ordered=False``
        yields results as they complete. ``progress`` None means the executor's.
        A call's exception is raised when reached, ending the iteration, unless
        ``return_exceptions`` is True: then it is yielded in the result's place.
        """
        if not isinstance(ordered, bool):
            raise TypeError(f"ordered must be True or False, got {ordered!r}")
        chunks = check_chunksize(chunksize)
        buffer = check_buffersize(buffersize)
        if progress is not None:
            check_progress(progress, "progress")
        seconds = self._resolve_task_timeout(task_timeout)
        if buffer is None:
            per_chunk = chunks if chunks is not None else _IMAP_ITEMS_PER_WORKER // 4
            buffer = 4 * self.workers * per_chunk
        run = self._start_run(
            fn,
            iterable,
            unpack=False,
            eager=False,
            ordered=ordered,
            chunksize=chunks,
            buffersize=buffer,
            task_timeout=seconds,
            progress=self._progress if progress is None else progress,
            total=_length(iterable),
        )
        return run.results(None, return_exceptions=return_exceptions)

    def _collect(
        self,
        fn: Callable[[Any], T],
        iterable: Iterable[Any],
        *,
        ordered: bool,
        chunksize: int | str,
        task_timeout: float | None,
        return_exceptions: bool,
    ) -> list[T]:
        """All results as a list; the inputs read at once (``fermion.map``)."""
        chunks = check_chunksize(chunksize)
        seconds = self._resolve_task_timeout(task_timeout)
        inputs = list(iterable)
        run = self._start_run(
            fn,
            inputs,
            unpack=False,
            eager=True,
            ordered=ordered,
            chunksize=chunks,
            buffersize=None,
            task_timeout=seconds,
            progress=self._progress,
            total=len(inputs),
        )
        return list(run.results(None, return_exceptions=return_exceptions))

    def _resolve_task_timeout(
        self, task_timeout: float | None, name: str = "task_timeout"
    ) -> float | None:
        """None: the executor's default; ``math.inf``: no timeout."""
        if task_timeout is None:
            return self._task_timeout
        return check_timeout(task_timeout, name)

    def _start_run(
        self,
        fn: Callable[..., Any],
        inputs: Iterable[Any],
        *,
        unpack: bool,
        eager: bool,
        ordered: bool,
        chunksize: int | None,
        buffersize: int | None,
        task_timeout: float | None,
        progress: ProgressArg,
        total: int | None,
    ) -> ChunkedRun:
        if not callable(fn):
            raise TypeError(
                f"the function to run must be callable, got {fn!r} ({type(fn).__name__})"
            )
        if chunksize is None and task_timeout is not None:
            chunksize = 1  # so that the timeout is per item, not per chunk
        with self._lock:
            self._check_open_locked()
        run = ChunkedRun(
            fn,
            inputs,
            unpack=unpack,
            submit=self._backend.submit,
            workers=functools.partial(_read_workers, self._backend),
            eager=eager,
            ordered=ordered,
            chunksize=chunksize,
            buffersize=buffersize,
            task_timeout=task_timeout,
            progress=make_progress(progress, total, describe_callable(fn)),
            total=total,
            on_settled=self._run_settled,
        )
        with self._lock:
            self._check_open_locked()
            self._runs.add(run)
        run.start()
        return run

    # -- the end ----------------------------------------------------------------------

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> Literal[False]:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.terminate()  # Ctrl-C: do not wait for running tasks
        else:
            self.shutdown(wait=True)
        return False

    def terminate(self) -> None:
        """Stop now: cancel everything not started, and stop running tasks where the
        backend can (processes: workers are killed; threads: running tasks fail at once
        the background: threads are interrupted on a best-effort basis). Used on
        Ctrl-C by ``with Executor(...)``."""
        with self._lock:
            self._shutdown = True
            runs = list(self._runs)
        for run in runs:
            run.drop_unsent()
        self._backend.terminate("KeyboardInterrupt")

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The standard semantics: no new work; with ``wait``, return once all work
        is done and the backend's workers are gone; with ``cancel_futures``, cancel
        the work not started (including the inputs of running maps not sent yet).
        A running ``imap`` stops reading its input: iterating it past what was read
        raises RuntimeError."""
        with self._lock:
            self._shutdown = True
            runs = list(self._runs)
        for run in runs:
            if cancel_futures:
                run.drop_unsent()
            else:
                run.flush()
        self._backend.shutdown(wait=wait, cancel_futures=cancel_futures)


def _forget(lock: threading.Lock, submitted: dict[Future[Any], Task], future: Future[Any]) -> None:
    with lock:
        submitted.pop(future, None)


def _discard_run(lock: threading.Lock, runs: set[ChunkedRun], run: ChunkedRun) -> None:
    with lock:
        runs.discard(run)


def _read_workers(backend: Backend) -> int:
    """The backend's workers now (``auto``'s change once it has chosen)."""
    return backend.workers


def _release(lock: threading.Lock, runs: set[ChunkedRun], backend: Backend) -> None:
    """An Executor was dropped without shutdown: its maps send what they hold, and the
    backend shuts down without waiting (the work submitted still runs)."""
    with lock:
        held = list(runs)
    for run in held:
        run.flush()
    backend.shutdown(wait=False)


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name} must be a number of seconds or None, got {value!r} ({type(value).__name__})"
        )
    return float(value)


def _length(iterable: Any) -> int | None:
    return len(iterable) if isinstance(iterable, Sized) else None
