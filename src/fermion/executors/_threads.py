"""The ``threads`` backend: a pool of worker threads in this process.

Good for I/O-bound work and for code that releases the GIL (NumPy, compression,
hashing), and for everything on free-threaded CPython (3.13t), where threads run
Python in parallel.

Timeouts and kills. A timer thread watches the deadlines of running tasks. At a task's
deadline (or on ``kill``) its future fails at once with TaskTimeoutError (or
TaskKilledError), so the caller never waits longer than the timeout. Then the backend
*tries* to stop the thread: it raises an exception inside it with
PyThreadState_SetAsyncExc. That works for Python code; a thread inside C code (a
``time.sleep``, a blocking read, a NumPy kernel) goes on until that call returns, and
a function that catches BaseException can swallow it. Either way the thread is
retired: it leaves the pool when its function ends, and a fresh thread takes its place
so the pool keeps its size.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from fermion._costs._platform import cpu_count
from fermion.errors import InitializerError, TaskKilledError
from fermion.executors._base import Backend, Task, refuse_if_unusable
from fermion.executors._calls import run_calls
from fermion.executors._deadlines import DeadlineTimer, TimerHandle
from fermion.executors._exit import ExitRegistry
from fermion.executors._initializer import check_initializer, run_initializer
from fermion.executors._interrupt import (
    TaskInterrupt,
    clear_pending_interrupt,
    interrupt_thread,
)

__all__ = ["ThreadBackend", "default_thread_count"]


def default_thread_count() -> int:
    """concurrent.futures' default: CPUs + 4 (I/O-bound work waits), at most 32."""
    return min(32, cpu_count() + 4)


class _Worker:
    """One pool thread and what it is running; guarded by the backend's lock."""

    __slots__ = ("current", "first", "ident", "interrupted", "retired", "thread", "wake")

    def __init__(self, first: Task | None) -> None:
        # The task the thread was started for: taken off the queue at once, so that a
        # shutdown(cancel_futures=True) right after submit does not cancel it before the
        # new thread could reach the queue (ThreadPoolExecutor's thread wins that race).
        self.first = first
        self.thread: threading.Thread | None = None
        self.ident: int | None = None
        self.current: Task | None = None
        self.interrupted = False  # an interrupt was sent for ``current``
        self.retired = False  # leave the pool once ``current`` ends
        # Held while the thread sleeps; whoever takes it off the idle list releases it
        # once, after letting go of the pool's lock (see ``ThreadBackend._work``).
        self.wake = threading.Lock()
        self.wake.acquire()


def _shutdown_all_at_exit(backends: list[ThreadBackend]) -> None:
    # Like concurrent.futures: at interpreter exit, queued and running work finishes.
    for backend in backends:
        backend.shutdown(wait=True)


_live_backends: ExitRegistry[ThreadBackend] = ExitRegistry(_shutdown_all_at_exit)


class ThreadBackend(Backend):
    """A pool of up to ``workers`` threads, started on demand.

    ``workers`` defaults to CPUs + 4 (at most 32), as in ThreadPoolExecutor.
    ``thread_name_prefix`` names the threads (``"<prefix>-<n>"``).
    ``initializer(*initargs)`` runs in each thread before its first task; if it raises,
    the pool is broken, as ThreadPoolExecutor's: queued tasks fail with
    InitializerError and ``submit`` raises it.
    """

    name: ClassVar[str] = "threads"

    def __init__(
        self,
        workers: int | None = None,
        *,
        thread_name_prefix: str = "fermion-threads",
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
    ) -> None:
        self._initargs = check_initializer(initializer, initargs, self.name)
        self._initializer = initializer
        self._broken: InitializerError | None = None
        self._max_workers = default_thread_count() if workers is None else workers
        self._prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._queue: deque[Task] = deque()
        self._workers: set[_Worker] = set()  # in the pool (not retired)
        self._retired: set[_Worker] = set()
        self._idle: list[_Worker] = []  # asleep, waiting for a task (last in, first out)
        self._closed = False
        self._started = 0
        self._timer = DeadlineTimer(f"{thread_name_prefix}-deadlines")
        _live_backends.add(self)

    @property
    def workers(self) -> int:
        return self._max_workers

    @property
    def broken(self) -> InitializerError | None:
        return self._broken

    def submit(self, task: Task) -> None:
        with self._lock:
            refuse_if_unusable(self._broken, self._closed, f"the threads backend {self._prefix!r}")
            self._queue.append(task)
            sleeper = self._idle.pop() if self._idle else None
            if sleeper is None:
                self._grow_locked()
        if sleeper is not None:
            sleeper.wake.release()

    def kill(self, task: Task) -> bool:
        """Fail a running task with TaskKilledError and interrupt its thread (best effort)."""
        return self._stop(
            task,
            TaskKilledError(
                f"{task.describe()} was killed on request; its thread was sent an interrupt "
                f"(best effort: code running in C goes on until it returns to Python)",
                task=task.describe(),
            ),
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            dropped = list(self._queue) if cancel_futures else []
            if cancel_futures:
                self._queue.clear()
            sleepers, self._idle = self._idle, []
            threads = [w.thread for w in self._workers if w.thread is not None]
        for sleeper in sleepers:
            sleeper.wake.release()
        for task in dropped:
            task.future.cancel()
        if wait:
            me = threading.current_thread()
            for thread in threads:
                # Joined in slices: an untimed join is not interrupted by Ctrl-C on
                # every build (free-threaded 3.13t).
                while thread is not me and thread.is_alive():
                    thread.join(0.25)
            with self._lock:
                # Retired threads may be stuck in C code: their tasks already failed,
                # so the timer has nothing left to do.
                done = not self._workers
            if done:
                self._timer.close()

    def terminate(self, reason: str = "terminated") -> None:
        """Stop now (Ctrl-C): cancel queued tasks, fail running ones with TaskKilledError
        and interrupt their threads (best effort); do not wait for them. Interrupted
        threads are not joined at exit, so a program ends even if one is stuck in C."""
        self.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            running = [w.current for w in self._workers if w.current is not None]
            unstarted = [w.first for w in self._workers if w.first is not None]
        # A task a thread was started for: cancelled, unless it started meanwhile.
        running += [task for task in unstarted if not task.future.cancel()]
        for task in running:
            self._stop(
                task,
                TaskKilledError(
                    f"{task.describe()} was stopped: the threads backend was terminated ({reason})",
                    task=task.describe(),
                ),
            )

    def statistics(self) -> dict[str, int]:
        """Threads in the pool, idle ones, retired ones still running, queued tasks."""
        with self._lock:
            return {
                "threads": len(self._workers),
                "idle": len(self._idle),
                "retired_running": sum(
                    1 for w in self._retired if w.thread and w.thread.is_alive()
                ),
                "queued": len(self._queue),
            }

    # -- the pool ---------------------------------------------------------------------

    def _grow_locked(self) -> None:
        """Start a thread if tasks wait that no sleeping thread will take."""
        if len(self._workers) >= self._max_workers or len(self._queue) <= len(self._idle):
            return
        worker = _Worker(self._queue.popleft() if self._queue else None)
        self._started += 1
        worker.thread = threading.Thread(
            target=self._work, args=(worker,), name=f"{self._prefix}-{self._started}", daemon=True
        )
        self._workers.add(worker)
        worker.thread.start()

    def _work(self, worker: _Worker) -> None:
        """Run queued tasks until the pool closes. With nothing queued, the thread
        sleeps on its own ``wake`` lock, which ``submit`` releases after it has let go
        of the pool's lock: a Condition would wake it while the pool's lock is still
        held, and on a free-threaded build the woken thread would spin on it."""
        worker.ident = threading.get_ident()
        try:
            if self._initializer is not None and not self._initialized(worker):
                return
            task = worker.first  # ``_run`` clears it once the task runs
            while True:
                if task is not None:
                    self._run(worker, task)
                    del task  # an idle thread must not keep its last task's arguments alive
                    if worker.retired:
                        return
                with self._lock:
                    if self._queue:
                        task = self._queue.popleft()
                    elif self._closed:
                        return
                    else:
                        self._idle.append(worker)
                        task = None
                if task is None:
                    worker.wake.acquire()
        finally:
            with self._lock:
                self._workers.discard(worker)
                self._retired.discard(worker)
                last = self._closed and not self._workers
            if last:
                self._timer.close(wait=False)

    def _initialized(self, worker: _Worker) -> bool:
        """Run the initializer in this thread; on failure break the pool (False)."""
        assert self._initializer is not None
        error = run_initializer(self._initializer, self._initargs)
        if error is None:
            return True
        with self._lock:
            if self._broken is None:
                self._broken = InitializerError.from_exception(
                    error, f"the initializer of a thread of the {self._prefix!r} pool"
                )
            dropped = [worker.first] if worker.first is not None else []
            worker.first = None
            dropped += self._queue
            self._queue.clear()
        for task in dropped:
            task.fail(self._broken.fresh())
        return False

    def _run(self, worker: _Worker, task: Task) -> None:
        with self._lock:
            # Under the lock, so that kill() sees a running task as this thread's.
            # (Future.set_running_or_notify_cancel calls no user callback.)
            worker.first = None
            if not task.start():
                return
            worker.current = task
            worker.interrupted = False
        handle: TimerHandle | None = None
        if task.timeout is not None:
            handle = self._arm(task)
        outcomes = None
        error: BaseException | None = None
        try:
            try:
                outcomes = run_calls(task)
            except TaskInterrupt:
                pass
            except BaseException as exc:  # SystemExit, KeyboardInterrupt: the task's outcome
                error = exc
            interrupted = self._detach(worker)
        except TaskInterrupt:  # arrived late, after the function returned
            interrupted = self._detach(worker)
        if handle is not None:
            handle.cancel()
        if interrupted:
            return  # the timer or kill() has failed the task already
        if error is not None:
            task.fail(error)
        elif outcomes is not None:
            task.finish(outcomes)

    def _detach(self, worker: _Worker) -> bool:
        with self._lock:
            worker.current = None
            if worker.interrupted and worker.ident is not None:
                clear_pending_interrupt(worker.ident)
            return worker.interrupted

    # -- timeouts and kills -------------------------------------------------------------

    def _arm(self, task: Task) -> TimerHandle:
        timeout = task.timeout
        assert timeout is not None and task.started_at is not None

        def expire() -> None:
            self._stop(
                task,
                task.timed_out(
                    self.name,
                    "its thread was sent an interrupt (best effort: code running in C goes "
                    "on until it returns to Python) and replaced",
                ),
            )

        return self._timer.call_at(task.started_at + timeout, expire)

    def _stop(self, task: Task, exc: BaseException) -> bool:
        with self._lock:
            worker = next((w for w in self._workers if w.current is task), None)
            if worker is None or worker.interrupted or worker.ident is None:
                return False
            worker.interrupted = True
            worker.retired = True
            self._workers.discard(worker)
            self._retired.add(worker)
            interrupt_thread(worker.ident)
            self._grow_locked()
        task.fail(exc)
        return True
