"""The pool's state and every change to it, owned by one thread.

``PoolState`` holds the workers, the queue of pending tasks and who runs what. Only the
pool's own thread calls its methods, each one an event: a command from a user thread
(submit, kill, shutdown, terminate), a worker's result pipe became readable, a worker's
sentinel fired (it died), a deadline passed. No other object writes its fields and it
takes no locks; user threads reach it only through the command inbox of ``ProcessPool``.

Failures stay local: a worker that dies fails only the task it was running and is
replaced at once; a task that times out or is killed costs only its worker. The pool
breaks as a whole only when workers cannot start at all (initializer fails, or they die
while starting several times in a row).

While tasks are short, each busy worker also holds its next task (``Worker.next_task``):
it starts it the moment it sends the last result, instead of idling while the result
travels and the pool's thread wakes up to send the next one (on a loaded machine that
hand-off takes a good part of a millisecond). The next task has not started, so when the
worker dies, is killed or retires before reaching it, it goes back to the front of the
queue, and a crash is still blamed on the one task that was running. Long tasks are not
handed out in advance: the gap is a negligible share of them, and a task waiting behind
a long one could not move to a worker that frees up sooner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import BrokenExecutor
from itertools import islice
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, NamedTuple

from fermion._costs._startup import record_worker_startup
from fermion.errors import (
    IMPORTABLE_RESULTS,
    PASS_PICKLABLE,
    RETURN_PICKLABLE,
    InitializerError,
    RemoteError,
    RemoteTraceback,
    SerializationError,
    TaskKilledError,
    WorkerCrashedError,
    WorkerMemoryError,
    describe_exception,
    unloadable,
    unpicklable,
)
from fermion.executors import _log_records, _remote_calls
from fermion.executors._base import BatchOutcomes, PositionalCalls, Task
from fermion.executors._calls import first_unpicklable
from fermion.executors._processes import _codec, _start, _worker
from fermion.executors._processes._exits import (
    StartFailures,
    describe_exit,
    exit_hint,
    signal_name,
)
from fermion.executors._processes._functions import PickledFunctions

__all__ = ["PoolState"]

#: How many functions a worker keeps unpickled; the pool mirrors each worker's cache.
FUNCTIONS_PER_WORKER = 64
#: How many distinct pickled functions the pool remembers ids for.
FUNCTION_IDS = 1024
#: How long a worker told to stop may take before it is killed.
STOP_GRACE_S = 5.0
#: A busy worker is handed its next task in advance only while tasks take less than this
#: (the last one and the mean of recent ones): below it the hand-off gap is a visible
#: share of a task.
PREFETCH_BELOW_S = 0.25
#: A task is sent ahead only if its message is at most this big (and it holds at most
#: ``AHEAD_MAX_CALLS`` calls, checked before encoding it). The worker has read its
#: current task whole before it runs it, so a message this small always fits in the
#: task pipe (64 KiB on Linux, 16 KiB at first on macOS) and the send never blocks. A
#: bigger one could block the pool's thread while the worker blocks writing a big
#: result that the pool's thread is not there to read: a deadlock.
AHEAD_MAX_BYTES = 8 * 1024
AHEAD_MAX_CALLS = 256
#: With ``max_memory_per_worker``, how often the pool reads the RSS of each worker that
#: runs a task (the first time this long after the task starts).
MEMORY_SAMPLE_S = 0.05
#: Weight of the newest task in the running mean of task durations.
DURATION_WEIGHT = 0.25
#: A worker told to skip its next task answers at once; one silent this long is taken to
#: be running it (the "skip" came too late) and is killed.
SKIP_GRACE_S = 1.0


class WorkerState(enum.Enum):
    STARTING = "starting"  # started, initializer not yet done
    IDLE = "idle"
    BUSY = "busy"  # holds ``task``
    RETIRING = "retiring"  # said it will exit (max tasks / memory); not replaced by itself
    STOPPING = "stopping"  # told to stop (shutdown)
    KILLED = "killed"  # killed by the pool (timeout, kill, terminate); awaiting its sentinel


#: States in which a worker counts towards the pool's size.
_LIVE = (WorkerState.STARTING, WorkerState.IDLE, WorkerState.BUSY)


class _RunMessage(NamedTuple):
    """A task encoded for one worker (see ``PoolState._run_message``)."""

    message: _codec.Encoded
    function_id: int
    carries_function: bool
    evict: list[int]  # function ids the worker drops to make room
    levels_version: int  # of the caller's log levels the worker has after this message


class Worker:
    """The pool's record of one worker process.

    ``task`` is the task it runs (state BUSY); ``next_task`` one it was sent in advance
    and has not started (see the module doc); ``next_killed`` says that task was killed
    while it waited and the worker was told to skip it; ``skipping``: the worker has
    reached that task and its answer to "skip" is awaited (anything else it sends
    before it belongs to the killed task).
    """

    __slots__ = (
        "deadline",
        "gone",
        "handle",
        "known_functions",
        "levels_version",
        "memory_check_at",
        "next_function",
        "next_killed",
        "next_task",
        "pid",
        "result_open",
        "result_waiting",
        "skipping",
        "started",
        "state",
        "task",
        "task_function",
        "tasks_sent",
    )

    def __init__(self, handle: _start.WorkerHandle, started: float) -> None:
        self.handle = handle
        self.pid: int = handle.process.pid
        self.started = started  # when its start began (time.monotonic)
        self.state = WorkerState.STARTING
        self.task: Task | None = None
        self.next_task: Task | None = None
        self.next_killed = False
        self.tasks_sent = 0
        self.result_waiting = _worker.readable_now(handle.result_conn)
        self.gone = False  # its task pipe is broken: it exited or died
        self.skipping = False
        self.deadline: float | None = None
        self.result_open = True
        #: Function ids the worker holds (or was sent), and whether it answered a task
        #: that used it (so it surely loaded it).
        self.known_functions: OrderedDict[int, bool] = OrderedDict()
        self.task_function = -1  # the function id of ``task``
        self.next_function = -1  # ... of ``next_task``
        self.levels_version = -1  # of the caller's log levels it was told (LevelWatch)
        self.memory_check_at: float | None = None  # when to read its RSS next (busy only)

    @property
    def sentinel(self) -> int:
        return int(self.handle.process.sentinel)


class PoolState:
    """Everything the pool knows, changed only by the pool's thread (see module doc)."""

    def __init__(
        self,
        *,
        size: int,
        context: BaseContext,
        setup: _worker.WorkerSetup,
        alive_conn: Connection,
        own_fds: Callable[[], list[int]],
    ) -> None:
        self.size = size
        self._context = context
        self._setup = setup
        self._alive_conn = alive_conn
        self._own_fds = own_fds
        self.workers: dict[int, Worker] = {}  # by pid
        self.pending: deque[Task] = deque()
        self._started_tasks: set[int] = set()  # ids of pending tasks already start()ed
        self._too_big_ahead: set[int] = set()  # ids of pending tasks not to send ahead
        self._function_ids: OrderedDict[bytes, int] = OrderedDict()
        self._pickled_functions = PickledFunctions()
        self._log_levels = _log_records.LevelWatch()
        self._next_function_id = 0
        self._start_failures = StartFailures(imports_main=context.get_start_method() != "fork")
        self._mean_duration: float | None = None  # of recent tasks, for sending ahead
        self._last_duration: float | None = None
        self.broken: BrokenExecutor | None = None
        # A worker's initializer failed: the pool breaks once that worker (by pid) has
        # exited, so that what it logged on its way out has been flushed (a
        # QueueHandler's feeder thread is joined at exit), as under the standard library.
        self._init_failure: tuple[int, InitializerError] | None = None
        self.shutting_down = False
        # Tasks that ran to the end, with their outcomes: the pool's thread reports
        # them (``take_finished``) once it has sent what it can and is about to wait,
        # so that the caller it wakes does not wait for it to get there.
        self.finished_tasks: list[tuple[Task, BatchOutcomes]] = []
        self._wait_objects: dict[Any, tuple[str, Worker]] | None = None  # see wait_objects
        self.counts = dict.fromkeys(
            (
                "workers_started",
                "workers_crashed",
                "tasks_completed",
                "tasks_timed_out",
                "tasks_killed",
                "tasks_over_memory",
                "tasks_sent_ahead",
                "functions_sent",
            ),
            0,
        )

    # -- commands from user threads ----------------------------------------------------

    def submit(self, task: Task) -> None:
        if self.broken is not None:
            task.fail(self.broken)
        else:
            self.pending.append(task)

    def kill(self, task: Task) -> bool:
        """Kill the worker running ``task``; False if no worker is running it.

        A task sent ahead to a worker and not started yet fails now; its worker is
        killed when it gets to it (it cannot be taken back from the pipe)."""
        for worker in self.workers.values():
            if worker.state is not WorkerState.BUSY:
                continue
            if worker.task is task:
                self._kill_worker(worker)
                message = f"its worker process {worker.pid} was killed and replaced"
            elif worker.next_task is task and not worker.next_killed:
                worker.next_killed = True
                with contextlib.suppress(OSError):  # gone: its sentinel settles the rest
                    _codec.send(worker.handle.task_conn, _codec.encode((_worker.SKIP,)))
                message = f"it had not started yet, and will not run (worker process {worker.pid})"
            else:
                continue
            self.counts["tasks_killed"] += 1
            task.fail(
                TaskKilledError(
                    f"{task.describe()} was killed on request; {message}",
                    task=task.describe(),
                )
            )
            return True
        return False

    def shutdown(self, cancel_futures: bool) -> None:
        self.shutting_down = True
        if cancel_futures:
            self._cancel_pending(None)

    def terminate(self, reason: str) -> None:
        """Cancel pending tasks, kill every worker now, fail the running tasks."""
        self.shutting_down = True
        self._cancel_pending(reason)
        for worker in list(self.workers.values()):
            tasks = [worker.task, worker.next_task]
            worker.next_task = None  # fails below with the rest: not back to the queue
            if worker.state is not WorkerState.KILLED:
                self._kill_worker(worker)
            for task in tasks:
                if task is not None:
                    task.fail(
                        TaskKilledError(
                            f"{task.describe()} was stopped because the process pool was "
                            f"terminated ({reason})",
                            task=task.describe(),
                        )
                    )

    # -- the loop's bookkeeping --------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.shutting_down and not self.pending and not self.workers

    def step(self) -> None:
        """Start workers that are missing, hand tasks to idle workers, and when shutting
        down with nothing left to do, ask the workers to stop."""
        self._start_missing_workers()
        self._dispatch()
        if self.shutting_down and not self.pending:
            self._stop_idle_workers()

    def take_finished(self) -> list[tuple[Task, BatchOutcomes]]:
        """The tasks that finished since the last call, to report (``Task.finish``)."""
        finished, self.finished_tasks = self.finished_tasks, []
        return finished

    def wait_objects(self) -> dict[Any, tuple[str, Worker]]:
        """What the loop waits on: each open result pipe and each worker's sentinel.
        The same dict until a worker comes or goes or its result pipe closes, so that
        the loop can keep its poller while it is."""
        objects = self._wait_objects
        if objects is None:
            objects = {}
            for worker in self.workers.values():
                if worker.result_open:
                    objects[worker.handle.result_conn] = ("result", worker)
                objects[worker.sentinel] = ("exit", worker)
            self._wait_objects = objects
        return objects

    def next_deadline(self) -> float | None:
        deadlines = [w.deadline for w in self.workers.values() if w.deadline is not None]
        deadlines.extend(
            w.memory_check_at for w in self.workers.values() if w.memory_check_at is not None
        )
        return min(deadlines) if deadlines else None

    # -- events ------------------------------------------------------------------------

    def on_result_readable(self, worker: Worker) -> None:
        """Read every message the worker has written (it may be several, or EOF)."""
        conn = worker.handle.result_conn
        while worker.result_open and worker.result_waiting():
            try:
                frames = _codec.recv_frames(conn)
            except (EOFError, OSError):
                worker.result_open = False  # it exited or died; its sentinel tells which
                self._wait_objects = None
                return
            try:  # an OSError here is the result's own, not the pipe's
                message = _codec.decode(*frames)
            except BaseException as exc:
                self._on_unreadable_result(worker, exc)
                continue
            self._on_message(worker, message)

    def on_exit(self, worker: Worker) -> None:
        """The worker's process ended: read what it left, then settle its task."""
        if worker.result_open:
            self.on_result_readable(worker)
        process = worker.handle.process
        process.join(timeout=1.0)
        exitcode = process.exitcode
        del self.workers[worker.pid]
        self._wait_objects = None
        # Its result pipe is drained: the shared-memory segments it never took or
        # never handed over can go (before the pipes close: the task pipe names them).
        _codec.release_worker_segments(worker.pid, worker.handle.task_conn)
        self._close(worker)
        self._return_next_task(worker)  # it never started: another worker runs it
        task = worker.task
        if (
            self.broken is None
            and self._init_failure is not None
            and self._init_failure[0] == worker.pid
        ):
            self._break(self._init_failure[1])
        if worker.state is WorkerState.KILLED or self.broken is not None:
            return
        if worker.state is WorkerState.STARTING:  # replaced by step(), unless the pool breaks
            message = self._start_failures.worker_died(exitcode)
            if message is not None:
                self._break(
                    WorkerCrashedError(
                        message,
                        pid=worker.pid,
                        exitcode=exitcode,
                        signal_name=signal_name(exitcode),
                        task=None,
                    )
                )
            return
        if task is None:
            if worker.state is WorkerState.IDLE and exitcode != 0:
                self.counts["workers_crashed"] += 1  # died while idle; replaced by step()
            return
        self.counts["workers_crashed"] += 1
        task.fail(
            WorkerCrashedError(
                f"worker process {worker.pid} died ({describe_exit(exitcode)}) while running "
                f"{task.describe()}; only this task failed: the pool replaced the worker and "
                f"goes on.{exit_hint(exitcode)}",
                pid=worker.pid,
                exitcode=exitcode,
                signal_name=signal_name(exitcode),
                task=task.describe(),
            )
        )

    def on_deadlines(self, now: float) -> None:
        """Kill the workers whose task ran past its timeout or that grew past the memory
        limit, or that would not stop."""
        for worker in list(self.workers.values()):
            if worker.memory_check_at is not None and worker.memory_check_at <= now:
                self._check_memory(worker, now)
            if worker.deadline is None or worker.deadline > now:
                continue
            task = worker.task
            if worker.state is WorkerState.BUSY and task is not None:
                self._kill_worker(worker)
                self.counts["tasks_timed_out"] += 1
                task.fail(
                    task.timed_out(
                        "processes", f"its worker process {worker.pid} was killed and replaced"
                    )
                )
            else:  # a worker told to stop that did not
                self._kill_worker(worker)

    def close_all(self, reason: str) -> None:
        """The loop is ending (normally or not): leave no process and no task behind."""
        self.terminate(reason)
        for worker in list(self.workers.values()):
            process = worker.handle.process
            process.join(timeout=STOP_GRACE_S)
            if process.exitcode is not None:  # gone: nothing can use its segments now
                _codec.release_worker_segments(worker.pid, worker.handle.task_conn)
            self._close(worker)
        self.workers.clear()
        self._wait_objects = None

    # -- helpers -----------------------------------------------------------------------

    def _on_message(self, worker: Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == _worker.LOG:  # even from a killed worker: what it logged happened
            _log_records.replay(message[1])
            return
        if worker.state is WorkerState.KILLED:
            return  # words sent before it was killed: its tasks are settled already
        if worker.skipping:
            self._while_skipping(worker, message)
            return
        if kind == _worker.READY:
            if worker.state is WorkerState.STARTING:
                worker.state = WorkerState.IDLE
                record_worker_startup(time.monotonic() - worker.started)
            self._start_failures.worker_ready()
        elif kind == _worker.DONE:
            _, values, failures, retire = message
            self._function_loaded(worker)
            task = self._take_task(worker)
            if retire is not None:  # it exits now, without reading its next task
                worker.state = WorkerState.RETIRING
                self._return_next_task(worker)
            else:
                self._start_next_task(worker)
            if task is not None:
                self.counts["tasks_completed"] += 1
                self._record_duration(task)
                errors = {index: _failure(task, index, f) for index, f in failures.items()}
                self.finished_tasks.append((task, BatchOutcomes(values, errors)))
        elif kind == _worker.REJECTED:
            _, what, type_name, reason = message
            task = self._take_task(worker)
            self._start_next_task(worker)
            if task is not None:
                worker.known_functions.clear()  # it may not have loaded what we sent
                task.fail(
                    unloadable(
                        task.describe(),
                        what,
                        type_name,
                        reason,
                        "in the worker process",
                        "make sure the worker can import what they need",
                    )
                )
        elif kind == _worker.INIT_FAILED:
            info: _worker.RemoteErrorInfo = message[1]
            worker.state = WorkerState.RETIRING
            worker.deadline = time.monotonic() + STOP_GRACE_S  # killed if it lingers
            if self._init_failure is not None:
                return
            error = InitializerError(
                f"the initializer of a worker process raised {info.type_name}: {info.message}; "
                "the process pool cannot run tasks",
                type_name=info.type_name,
                remote_message=info.message,
                remote_traceback=info.traceback,
            )
            error.__cause__ = RemoteTraceback(info.traceback)
            self._init_failure = (worker.pid, error)

    def _while_skipping(self, worker: Worker, message: tuple[Any, ...]) -> None:
        """The worker was told to skip a killed task: only its answer to that counts."""
        kind = message[0]
        if kind == _worker.SKIPPED:
            worker.skipping = False
            worker.deadline = None
            worker.state = WorkerState.IDLE
        elif kind == _worker.DONE and message[3] is not None:  # the killed task ran; it retires
            worker.skipping = False
            worker.deadline = None
            worker.state = WorkerState.RETIRING
        # else: the killed task ran before the "skip" reached the worker: its outcome is dropped

    def _on_unreadable_result(self, worker: Worker, exc: BaseException) -> None:
        if worker.state is WorkerState.KILLED or worker.skipping:
            return
        self._function_loaded(worker)
        task = self._take_task(worker)
        self._start_next_task(worker)
        if task is not None:
            task.fail(
                unloadable(
                    task.describe(),
                    "result",
                    type(exc).__qualname__,
                    describe_exception(exc),
                    "in the caller",
                    IMPORTABLE_RESULTS,
                )
            )

    def _take_task(self, worker: Worker) -> Task | None:
        task, worker.task, worker.deadline = worker.task, None, None
        worker.memory_check_at = None
        return task

    def _check_memory(self, worker: Worker, now: float) -> None:
        """Read a busy worker's RSS; above ``max_memory`` its task fails and it goes."""
        limit = self._setup.max_memory
        task = worker.task
        if limit is None or task is None or worker.state is not WorkerState.BUSY:
            worker.memory_check_at = None
            return
        rss = resident_bytes(worker.pid)
        if rss is None or rss <= limit:
            worker.memory_check_at = now + MEMORY_SAMPLE_S
            return
        self._kill_worker(worker)
        self.counts["tasks_over_memory"] += 1
        task.fail(WorkerMemoryError.for_task(task.describe(), worker.pid, rss, limit))

    def _watch_memory(self, worker: Worker, now: float) -> None:
        """The worker starts a task: with a memory limit, sample its RSS while it runs."""
        if self._setup.max_memory is not None:
            worker.memory_check_at = now + MEMORY_SAMPLE_S

    def _function_loaded(self, worker: Worker) -> None:
        """The worker answered its task: it holds that task's function."""
        if worker.task_function in worker.known_functions:
            worker.known_functions[worker.task_function] = True

    def _start_next_task(self, worker: Worker) -> None:
        """The worker finished its task: it now runs the one it was sent ahead, if any."""
        task, worker.next_task = worker.next_task, None
        if task is None:
            worker.state = WorkerState.IDLE
            return
        if worker.next_killed:  # killed while it waited: the worker was told to skip it
            worker.next_killed = False
            worker.skipping = True
            worker.state = WorkerState.BUSY
            worker.deadline = time.monotonic() + SKIP_GRACE_S
            return
        now = time.monotonic()
        task.started_at = now  # it starts now; the chunk planner times it from here
        worker.state = WorkerState.BUSY
        worker.task = task
        worker.task_function = worker.next_function
        worker.deadline = None if task.timeout is None else now + task.timeout
        self._watch_memory(worker, now)

    def _return_next_task(self, worker: Worker) -> None:
        """The worker will not run the task sent ahead: back to the front of the queue."""
        task, worker.next_task = worker.next_task, None
        killed, worker.next_killed = worker.next_killed, False
        if task is not None and not killed:
            self._requeue(task)

    def _requeue(self, task: Task) -> None:
        """A task marked running that never ran: to the front of the queue."""
        if self.broken is not None:
            task.fail(self.broken)
            return
        self._started_tasks.add(task.id)
        self.pending.appendleft(task)

    def _record_duration(self, task: Task) -> None:
        if task.started_at is None:
            return
        took = time.monotonic() - task.started_at
        self._last_duration = took
        mean = self._mean_duration
        self._mean_duration = took if mean is None else mean + DURATION_WEIGHT * (took - mean)

    def _sends_ahead(self, worker: Worker) -> bool:
        """Whether to hand this busy worker its next task now (see the module doc)."""
        mean, last = self._mean_duration, self._last_duration
        max_tasks = self._setup.max_tasks
        return (
            worker.state is WorkerState.BUSY
            and worker.next_task is None
            and not worker.next_killed
            and not worker.skipping
            and not worker.gone
            and mean is not None
            and last is not None
            and max(mean, last) < PREFETCH_BELOW_S
            and (max_tasks is None or worker.tasks_sent < max_tasks)
        )

    def _start_missing_workers(self) -> None:
        if self.broken is not None or self._init_failure is not None:
            return
        if self.shutting_down and not self.pending:
            return
        live = sum(1 for w in self.workers.values() if w.state in _LIVE)
        for _ in range(self.size - live):
            levels_version, levels = self._log_levels.current()
            started = time.monotonic()
            try:
                handle = _start.start_worker(
                    self._context,
                    alive_conn=self._alive_conn,
                    setup=dataclasses.replace(self._setup, log_levels=levels),
                    fds_to_close_in_fork=self._own_fds(),
                )
            except Exception as exc:
                if live == 0:
                    self._break(
                        WorkerCrashedError(
                            f"could not start a worker process ({describe_exception(exc)})",
                            pid=None,
                            exitcode=None,
                            signal_name=None,
                            task=None,
                        )
                    )
                return
            worker = Worker(handle, started)
            worker.levels_version = levels_version
            self.workers[worker.pid] = worker
            self._wait_objects = None
            self.counts["workers_started"] += 1
            live += 1

    def _dispatch(self) -> None:
        """Idle workers first; then, while tasks are short, busy workers' next tasks."""
        workers = list(self.workers.values())
        for worker in workers:
            while worker.state is WorkerState.IDLE and self.pending:
                task = self._next_pending()
                if task is not None:
                    self._send(worker, task)
        for worker in workers:
            while self.pending and self._sends_ahead(worker):
                first = self.pending[0]
                if len(first.calls) > AHEAD_MAX_CALLS or first.id in self._too_big_ahead:
                    return  # it waits for a worker that is free: keep the order
                task = self._next_pending()
                if task is not None and not self._send(worker, task, ahead=True):
                    return

    def _next_pending(self) -> Task | None:
        """The next task to send, marked running; None if it was cancelled."""
        task = self.pending.popleft()
        if task.id in self._started_tasks:
            self._started_tasks.discard(task.id)
        elif not task.start():
            return None  # cancelled while pending
        return task

    def _send(self, worker: Worker, task: Task, *, ahead: bool = False) -> bool:
        """Send ``task`` to run now (an idle worker) or next (``ahead``: a busy one).

        False if it was not sent ahead because its message is too big (it went back
        to the front of the queue); True otherwise (sent, or failed and settled)."""
        try:
            run = self._run_message(worker, task)
        except SerializationError as error:
            task.fail(error)
            return True
        if ahead and run.message.nbytes > AHEAD_MAX_BYTES:
            self._too_big_ahead.add(task.id)
            self._requeue(task)
            return False
        self._too_big_ahead.discard(task.id)
        self._deliver(worker, task, run, ahead=ahead)
        return True

    def _run_message(self, worker: Worker, task: Task) -> _RunMessage:
        """The "run" message for ``task`` on ``worker``, with the function if the worker
        may not hold it. Raises ``SerializationError`` naming what cannot be pickled. It
        changes nothing the worker is known to hold: ``_deliver`` records that."""
        # BaseException: a SystemExit or KeyboardInterrupt raised by the user's pickling
        # code is that task's failure; it must not end the pool's thread.
        try:
            function = self._pickled_functions.dumps(task.fn)
        except BaseException as exc:
            raise _unpicklable(task.describe(), "function", task.fn, exc) from exc
        function_id = self._function_id(function)
        known = worker.known_functions
        # Not known, or sent with the task it runs now, which may yet fail to load it:
        # the function travels (again).
        carries_function = not known.get(function_id, False)
        evict: list[int] = []
        if function_id not in known:
            evict = list(islice(known, max(0, len(known) + 1 - FUNCTIONS_PER_WORKER)))
        payload = function if carries_function else None
        levels_version, levels = self._log_levels.current()
        new_levels = levels if levels_version != worker.levels_version else None
        try:
            message = _codec.encode(
                (_worker.RUN, function_id, payload, evict, *_wire_calls(task), new_levels)
            )
        except BaseException as exc:
            raise _find_unpicklable_argument(task, exc) from exc
        return _RunMessage(message, function_id, carries_function, evict, levels_version)

    def _deliver(self, worker: Worker, task: Task, run: _RunMessage, *, ahead: bool) -> None:
        """Write ``run`` to the worker's task pipe and record who runs what."""
        known = worker.known_functions
        if run.function_id in known:
            known.move_to_end(run.function_id)
        else:
            known[run.function_id] = False
            for function_id in run.evict:
                del known[function_id]
        if ahead:
            worker.next_task = task
            worker.next_function = run.function_id
        else:
            worker.state = WorkerState.BUSY
            worker.task = task
            worker.task_function = run.function_id
            now = time.monotonic()
            worker.deadline = None if task.timeout is None else now + task.timeout
            self._watch_memory(worker, now)
        try:
            _codec.send(worker.handle.task_conn, run.message, until=task.future)
        except OSError:
            # The worker is gone before it got the task: the task never ran, so it goes
            # back to the front of the queue; the worker's sentinel will settle the rest
            # (a busy worker's running task included).
            if ahead:
                worker.next_task = None
                worker.gone = True  # no more tasks ahead: its sentinel settles the rest
            else:
                self._take_task(worker)
                worker.state = WorkerState.KILLED
            self._requeue(task)
            return
        worker.tasks_sent += 1
        worker.levels_version = run.levels_version
        if ahead:
            self.counts["tasks_sent_ahead"] += 1
        if run.carries_function:
            self.counts["functions_sent"] += 1

    def _function_id(self, pickled: bytes) -> int:
        ids = self._function_ids
        function_id = ids.get(pickled)
        if function_id is None:
            function_id = self._next_function_id
            self._next_function_id += 1
            ids[pickled] = function_id
            if len(ids) > FUNCTION_IDS:
                ids.popitem(last=False)
        else:
            ids.move_to_end(pickled)
        return function_id

    def _stop_idle_workers(self) -> None:
        grace = time.monotonic() + STOP_GRACE_S
        for worker in self.workers.values():
            if worker.state is WorkerState.IDLE:
                worker.state = WorkerState.STOPPING
                worker.deadline = grace
                with contextlib.suppress(OSError):  # already gone: its sentinel will fire
                    _codec.send(worker.handle.task_conn, _codec.encode((_worker.STOP,)))
            elif worker.state in (WorkerState.STARTING, WorkerState.RETIRING):
                if worker.deadline is None:
                    worker.deadline = grace
                if worker.state is WorkerState.STARTING:
                    self._kill_worker(worker)  # nothing to finish: no need to wait for it

    def _cancel_pending(self, reason: str | None) -> None:
        while self.pending:
            task = self.pending.popleft()
            self._too_big_ahead.discard(task.id)
            if task.id in self._started_tasks:
                self._started_tasks.discard(task.id)
                task.fail(
                    TaskKilledError(
                        f"{task.describe()} was cancelled before it ran ({reason or 'shutdown'})",
                        task=task.describe(),
                    )
                )
            else:
                task.future.cancel()

    def _break(self, error: BrokenExecutor) -> None:
        """The pool cannot run tasks: fail what waits and what comes."""
        self.broken = error
        while self.pending:
            task = self.pending.popleft()
            self._started_tasks.discard(task.id)
            self._too_big_ahead.discard(task.id)
            task.fail(error)
        for worker in self.workers.values():
            if worker.state in (WorkerState.STARTING, WorkerState.IDLE):
                self._kill_worker(worker)

    def _kill_worker(self, worker: Worker) -> None:
        worker.state = WorkerState.KILLED
        worker.task = None
        worker.deadline = None
        worker.memory_check_at = None
        self._return_next_task(worker)
        with contextlib.suppress(OSError, ValueError):  # already gone
            worker.handle.process.kill()

    def _close(self, worker: Worker) -> None:
        worker.handle.task_conn.close()
        worker.handle.result_conn.close()
        worker.result_open = False
        self._wait_objects = None
        with contextlib.suppress(ValueError):  # still running: after a failed join at exit
            worker.handle.process.close()


def _wire_calls(task: Task) -> tuple[int, list[Any]]:
    """The calls as a plain list and how to read it (see ``_worker.run_calls``): the
    first arguments of a map chunk as one list, no tuple per call."""
    calls = task.calls
    if isinstance(calls, PositionalCalls):
        return (_remote_calls.ARGS if calls.unpack else _remote_calls.ONE_ARG), calls.items
    if all(not kwargs for _, kwargs in calls):
        return _remote_calls.ARGS, [args for args, _ in calls]
    return _remote_calls.ARGS_KWARGS, list(calls)


def _failure(task: Task, index: int, failure: Any) -> BaseException:
    """The exception of a call that failed in the worker (see ``_worker._encode_done``)."""
    subject = task.describe_one(index)
    if isinstance(failure, _worker.UnpicklableResult):
        return unpicklable(
            subject,
            "result",
            failure.type_name,
            failure.reason,
            "to send it back from the worker process",
            RETURN_PICKLABLE,
        )
    if isinstance(failure, _worker.RemoteErrorInfo):
        error: BaseException = RemoteError(
            f"{failure.type_name}: {failure.message} (raised by {subject} in a "
            f"worker process; the exception itself could not be pickled back)",
            type_name=failure.type_name,
            remote_message=failure.message,
            remote_traceback=failure.traceback,
        )
        tb = failure.traceback
    else:
        error, tb = failure
    error.__cause__ = RemoteTraceback(f'\n"""\n{tb}"""')
    return error


def _unpicklable(
    subject: str, what: str, culprit: object, exc: BaseException
) -> SerializationError:
    return unpicklable(
        subject,
        what,
        type(culprit).__qualname__,
        describe_exception(exc),
        "to send it to a worker process",
        PASS_PICKLABLE,
    )


def _find_unpicklable_argument(task: Task, exc: BaseException) -> SerializationError:
    """Pickling the task failed: find which argument it was (slow path only)."""
    found = first_unpicklable(task, _codec.dumps)
    if found is None:
        return _unpicklable(task.describe(), "arguments", task.calls, exc)
    index, what, value, arg_exc = found
    return _unpicklable(task.describe_one(index), what, value, arg_exc)


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int) -> int | None:
    """The resident set size (RSS) of process ``pid`` in bytes, None if it is gone.
    /proc/PID/statm on Linux (one small read), psutil elsewhere."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:
        return None
