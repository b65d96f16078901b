"""The ``dask`` backend: fermion tasks on a Dask distributed cluster.

``Executor(backend="dask")`` starts a cluster of worker processes on this machine
(loopback only); ``address="tcp://host:port"`` connects to a running scheduler; a
``distributed.Client`` uses that client's cluster and leaves the client open.

How it works. The backend owns one daemon thread running an asyncio loop with an
*asynchronous* Dask client (and, for a local cluster, the scheduler and the nannies).
All state lives on that loop and changes only there; ``submit``/``kill``/``shutdown``
hand work to it with ``call_soon_threadsafe``. One fermion task (one ``submit``, or a
whole chunk of ``map``/``imap``) is one Dask task, so Dask's per-task overhead (about a
millisecond) is paid once per chunk, not once per item.

A task is *running* only once a worker starts it: the worker logs an event that the
client receives; only then is ``task.start()`` called and the timeout armed. So a
queued task can still be cancelled, and a timeout does not count time spent queued.

What Dask cannot do: stop a Python function that is running. A timeout or a kill
fails the task in the caller at once and cancels it on the cluster; the function
itself runs on to its end, unless ``restart_workers`` is on (the default for the
local cluster fermion starts), in which case the worker process is restarted by its
nanny.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import logging
import pickle
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import cloudpickle
import psutil

from fermion._costs._platform import cpu_count
from fermion.errors import (
    IMPORTABLE_RESULTS,
    PASS_PICKLABLE,
    DaskClusterError,
    DaskWorkerLostError,
    ExtraMissingError,
    RemoteTraceback,
    SerializationError,
    TaskKilledError,
    describe_exception,
    refused_after_shutdown,
    unloadable,
    unpicklable,
)
from fermion.executors import _dask_worker, _log_records, _source_pickle
from fermion.executors._arguments import check_positive_int, check_workers
from fermion.executors._base import Backend, BatchOutcomes, Outcome, Task
from fermion.executors._calls import first_unpicklable
from fermion.executors._exit import ExitRegistry

__all__ = ["DaskBackend", "import_distributed"]

#: How long the backend waits for its own loop thread to answer (start, kill, close).
_LOOP_ANSWER_TIMEOUT = 60.0


def import_distributed() -> ModuleType:
    """Import ``distributed``, or raise ExtraMissingError naming the ``dask`` extra."""
    try:
        import distributed
    except ImportError as exc:
        raise ExtraMissingError.for_feature(
            "the dask backend (Executor(backend='dask'))", "dask", "distributed"
        ) from exc
    return distributed


@dataclass(eq=False)
class _Submitted:
    """What the loop knows of one task it handed to Dask."""

    task: Task
    key: str
    fn_payload: bytes | None = None
    calls_payload: bytes | None = None
    #: Indices of the calls sent to Dask (None: all); the others failed to pickle.
    sent: list[int] | None = None
    rejected: dict[int, Outcome] = field(default_factory=dict)
    dask_future: Any = None
    worker: str | None = None
    started: bool = False
    timer: asyncio.TimerHandle | None = None
    watcher: asyncio.Future[None] | None = None
    #: A one-call task's payloads, kept to run it again alone if its workers die.
    rerun_payload: tuple[bytes | None, bytes] | None = None
    #: This is that second run.
    rerun: bool = False


def _key_for(task: Task) -> str:
    name = getattr(task.fn, "__name__", None) or type(task.fn).__name__
    name = re.sub(r"[^A-Za-z0-9_]", "_", name) or "task"
    return f"fermion-{name}-{uuid.uuid4().hex}"


def _pickling_failure(
    task: Task, index: int | None, what: str, value: Any, exc: BaseException
) -> SerializationError:
    """Name the culprit of a pickling failure (which call, which argument, which type)
    and what pickling it raised."""
    subject = task.describe() if index is None else task.describe_one(index)
    return unpicklable(
        subject,
        what,
        type(value).__qualname__,
        describe_exception(exc),
        "to send it to the Dask cluster",
        PASS_PICKLABLE,
    )


def _prepare(task: Task, pickled_fn: tuple[Any, bytes] | None) -> _Submitted:
    """Pickle a task in the caller's thread; name any argument that will not pickle.

    ``pickled_fn`` is ``(fn, its bytes)`` from an earlier task (a map's chunks share
    their function), so that the function is pickled once per run, not per chunk.
    """
    submitted = _Submitted(task=task, key=_key_for(task))
    if pickled_fn is not None and pickled_fn[0] is task.fn:
        submitted.fn_payload = pickled_fn[1]
    else:
        try:
            submitted.fn_payload = _source_pickle.dumps(task.fn)
        except Exception as exc:
            error = _pickling_failure(task, None, "function", task.fn, exc)
            submitted.rejected = {-1: (False, error)}
            return submitted
    try:
        submitted.calls_payload = _dask_worker.dumps(task.calls)
        return submitted
    except Exception:
        pass
    sent: list[int] = []
    for index in range(len(task.calls)):
        found = first_unpicklable(task, cloudpickle.dumps, [index])
        if found is None:
            sent.append(index)
        else:
            _, what, value, raised = found
            submitted.rejected[index] = (False, _pickling_failure(task, index, what, value, raised))
    if sent:
        try:
            submitted.calls_payload = _dask_worker.dumps([task.calls[i] for i in sent])
        except Exception as exc:  # each call pickles alone, not together: give up on the task
            error = unpicklable(
                task.describe(),
                "calls (each pickles alone, not together)",
                "list",
                describe_exception(exc),
                "to send them to the Dask cluster",
                PASS_PICKLABLE,
            )
            submitted.rejected = {-1: (False, error)}
            return submitted
    submitted.sent = sent
    return submitted


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _unpack(data: bytes) -> tuple[str, Any, float | None]:
    """``("failed", exception, None)`` or ``("ok", BatchOutcomes, seconds the calls
    took on the worker)``, with the remote tracebacks attached."""
    kind, *rest = pickle.loads(data)
    if kind == "failed":
        exc, tb = rest
        exc.__cause__ = RemoteTraceback(tb)
        return kind, exc, None
    values, wire_errors, seconds, records = rest
    for record in records:  # logged by the task on its worker: through the caller's logging
        _log_records.replay(record)
    errors: dict[int, BaseException] = {}
    for index, (exc, tb) in wire_errors.items():
        if tb is not None:
            exc.__cause__ = RemoteTraceback(tb)
        errors[index] = exc
    return kind, BatchOutcomes(values, errors), seconds


class DaskBackend(Backend):
    """Runs fermion tasks on a Dask distributed cluster (see the module docstring).

    Parameters: ``address`` (None: start a local cluster; ``"tcp://host:port"``: connect
    to that scheduler; a ``distributed.Client``: use its cluster), ``workers`` (worker
    processes of the local cluster; the machine's CPU count by default),
    ``threads_per_worker`` (local cluster only, 1 by default), ``restart_workers``
    (restart the worker that runs a timed-out or killed task; default True for the local
    cluster, False for a cluster you share), ``connect_timeout`` (seconds).
    """

    name: ClassVar[str] = "dask"

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: Any = None,
        threads_per_worker: int = 1,
        restart_workers: bool | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        self._distributed = import_distributed()
        check_workers(workers)
        check_positive_int(threads_per_worker, "threads_per_worker")
        if not isinstance(connect_timeout, (int, float)) or connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be a positive number, not {connect_timeout!r}")
        if address is not None and workers is not None:
            raise ValueError(
                f"workers={workers} sizes the local cluster fermion starts; with address= the "
                "cluster's own workers run the tasks: start more workers there, or drop workers="
            )
        self._address = address
        self._owns_cluster = address is None
        self._n_workers = workers or cpu_count()
        self._threads_per_worker = threads_per_worker
        self._restart_workers = self._owns_cluster if restart_workers is None else restart_workers
        self._connect_timeout = float(connect_timeout)
        self._topic = f"fermion-started-{uuid.uuid4().hex}"
        self._log_levels = _log_records.LevelWatch()  # used on the loop thread only
        self._worker_threads = self._n_workers * threads_per_worker

        self._lock = threading.Lock()  # guards _closed against concurrent submit/shutdown
        self._closed = False
        self._closed_event = threading.Event()
        # Loop-owned state: touched only on the loop thread.
        self._submitted: dict[int, _Submitted] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._last_pickled_fn: tuple[Any, bytes] | None = None
        self._cancel_batch: list[Any] = []
        # One-call tasks given up on by Dask (KilledWorker), waiting to run again one at
        # a time (_rerun_alone), and the one running again now.
        self._reruns: collections.deque[_Submitted] = collections.deque()
        self._rerunning: _Submitted | None = None
        #: Set by terminate(): stop now; the local cluster's workers are killed, not
        #: restarted one by one and then closed gracefully.
        self._terminating = False
        self._client: Any = None
        self._cluster: Any = None

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name="fermion-dask-loop", daemon=True
        )
        self._thread.start()
        try:
            self._call_on_loop(self._start(), timeout=self._connect_timeout + 30.0)
        except BaseException:
            self._stop_loop()
            raise
        _live_backends.add(self)

    # -- public contract -----------------------------------------------------------

    @property
    def workers(self) -> int:
        return max(1, self._worker_threads)

    @property
    def client(self) -> Any:
        """The asynchronous ``distributed.Client`` fermion uses (for inspection)."""
        return self._client

    @property
    def scheduler_address(self) -> str:
        """The address of the scheduler, e.g. to connect a dashboard or more workers."""
        return str(self._client.scheduler.address)

    def submit(self, task: Task) -> None:
        pickled_fn = self._last_pickled_fn
        submitted = _prepare(task, pickled_fn)
        if submitted.fn_payload is not None and (
            pickled_fn is None or pickled_fn[0] is not task.fn
        ):
            self._last_pickled_fn = (task.fn, submitted.fn_payload)  # one atomic store
        with self._lock:
            if self._closed:
                raise refused_after_shutdown(f"the dask backend at {self._address_text()}")
            self._loop.call_soon_threadsafe(self._launch, submitted)

    def kill(self, task: Task) -> bool:
        """Fail the task with TaskKilledError and cancel it on the cluster.

        The Python function keeps running on its worker unless ``restart_workers`` is on.
        Returns False if the task is not known here or already done.
        """
        return bool(self._on_loop(self._kill, task, default=False))

    def terminate(self, reason: str = "terminated") -> None:
        """Stop now (Ctrl-C): cancel queued tasks, fail running ones with TaskKilledError
        and cancel them on the cluster (restarting their workers if ``restart_workers``);
        close without waiting for them."""
        with self._lock:
            first = not self._closed
            self._closed = True
            self._terminating = True
            if first:
                _live_backends.discard(self)
        self._on_loop(self._stop_everything, reason, default=None)
        if first:
            with contextlib.suppress(RuntimeError):  # loop already gone
                self._loop.call_soon_threadsafe(self._begin_close)

    def _on_loop(self, fn: Any, *args: Any, default: Any) -> Any:
        """Run ``fn(*args)`` on the loop thread and return its result (``default`` if
        the loop is gone). Loop state changes only there."""
        if self._on_loop_thread():
            return fn(*args)
        answer: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run_on_loop() -> None:
            try:
                answer.set_result(fn(*args))
            except BaseException as exc:
                answer.set_exception(exc)

        try:
            self._loop.call_soon_threadsafe(run_on_loop)
        except RuntimeError:  # the loop is closed: nothing runs any more
            return default
        return answer.result(timeout=_LOOP_ANSWER_TIMEOUT)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            first = not self._closed
            self._closed = True
            if first:
                _live_backends.discard(self)
        if cancel_futures:  # done when shutdown returns, even without wait
            self._on_loop(self._cancel_queued, default=None)
        if first:
            with contextlib.suppress(RuntimeError):  # loop already gone
                self._loop.call_soon_threadsafe(self._begin_close)
        if wait and not self._on_loop_thread():
            if not self._closed_event.wait(timeout=_LOOP_ANSWER_TIMEOUT * 5):
                raise DaskClusterError(
                    "the dask backend did not close within 300 s: running tasks did not "
                    "finish; call shutdown(cancel_futures=True) or kill them first",
                    address=self._address_text(),
                )
            self._thread.join(timeout=_LOOP_ANSWER_TIMEOUT)

    # -- the loop thread -------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def _on_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _call_on_loop(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    def _stop_loop(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._loop.call_soon_threadsafe(self._loop.stop)
        except RuntimeError:
            return
        self._thread.join(timeout=_LOOP_ANSWER_TIMEOUT)

    def _address_text(self) -> str:
        if self._address is None:
            return "local cluster"
        if isinstance(self._address, str):
            return self._address
        return str(getattr(getattr(self._address, "scheduler", None), "address", self._address))

    async def _start(self) -> None:
        distributed = self._distributed
        try:
            if self._address is None:
                self._cluster = await distributed.LocalCluster(
                    n_workers=self._n_workers,
                    threads_per_worker=self._threads_per_worker,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    asynchronous=True,
                    silence_logs=logging.ERROR,
                )
                target: Any = self._cluster
                security = None
            elif isinstance(self._address, str):
                target, security = self._address, None
            elif isinstance(self._address, distributed.Client):
                # Our own asynchronous connection to the user's scheduler: their client
                # stays theirs (sync or async, on their loop) and is never closed here.
                target = self._address.scheduler.address
                security = self._address.security
            else:
                raise TypeError(
                    "address must be None, a scheduler address like 'tcp://host:8786' or a "
                    f"distributed.Client, not {type(self._address).__name__}"
                )
            self._client = await distributed.Client(
                target,
                asynchronous=True,
                set_as_default=False,
                timeout=self._connect_timeout,
                security=security,
            )
        except (OSError, TimeoutError) as exc:
            await self._close_connections()
            raise DaskClusterError(
                f"could not reach the Dask scheduler at {self._address_text()} within "
                f"{self._connect_timeout:g} s ({describe_exception(exc)}); check that "
                "`dask scheduler` runs there and that the address and port are right",
                address=self._address_text(),
            ) from exc
        except BaseException:
            await self._close_connections()
            raise
        self._client.subscribe_topic(self._topic, self._on_started)
        if not self._owns_cluster:
            nthreads = await self._client.nthreads()
            self._worker_threads = sum(nthreads.values())

    def _launch(self, submitted: _Submitted) -> None:
        task = submitted.task
        if task.future.cancelled():
            return
        if submitted.calls_payload is None:  # nothing to run: report at once
            self._mark_started(submitted)
            self._finish(submitted, [])
            return
        self._submitted[task.id] = submitted
        if len(task.calls) == 1 and not submitted.rerun:
            submitted.rerun_payload = (submitted.fn_payload, submitted.calls_payload)
        submitted.dask_future = self._client.submit(
            _dask_worker.run_task,
            submitted.fn_payload,
            submitted.calls_payload,
            self._topic,
            task.id,
            self._log_levels.current()[1],
            task.first_item,
            task.describe(),
            key=submitted.key,
            pure=False,
        )
        submitted.fn_payload = submitted.calls_payload = None  # Dask has them now
        submitted.watcher = asyncio.ensure_future(self._watch(submitted))
        if not submitted.rerun:
            task.future.add_done_callback(functools.partial(self._on_task_future_done, task.id))

    def _rerun_alone(self, submitted: _Submitted) -> bool:
        """Queue a one-call task that Dask gave up on to run once more, alone.

        When a worker dies, Dask counts it against every task the worker held, so an
        innocent task that shared a worker with the one killing them is given up on
        too (KilledWorker). Run again one at a time, apart from the other given-up
        tasks, an innocent task completes and only the guilty one dies again. False:
        it ran alone already, or cannot run again; it fails now.
        """
        if submitted.rerun or submitted.rerun_payload is None or submitted.task.future.done():
            return False
        with self._lock:
            if self._closed:
                return False
        submitted.rerun = True
        submitted.fn_payload, submitted.calls_payload = submitted.rerun_payload
        submitted.rerun_payload = None
        submitted.key = _key_for(submitted.task)
        submitted.worker = None
        self._reruns.append(submitted)
        return True

    def _next_rerun(self) -> None:
        while self._rerunning is None and self._reruns:
            submitted = self._reruns.popleft()
            if submitted.task.future.done():
                self._forget(submitted)
                continue
            self._rerunning = submitted
            self._launch(submitted)

    def _on_task_future_done(self, task_id: int, future: concurrent.futures.Future[Any]) -> None:
        # Runs in whichever thread finished or cancelled the future.
        if not future.cancelled():
            return
        with contextlib.suppress(RuntimeError):  # a closed loop has nothing to cancel
            self._loop.call_soon_threadsafe(self._cancel_cancelled, task_id)

    def _cancel_cancelled(self, task_id: int) -> None:
        submitted = self._submitted.get(task_id)
        if submitted is not None:
            self._cancel_on_cluster(submitted, "cancelled by the caller")

    def _on_started(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        submitted = self._submitted.get(message.get(_dask_worker.STARTED_FIELD_TASK, -1))
        if submitted is None:
            return
        submitted.worker = message.get(_dask_worker.STARTED_FIELD_WORKER)
        self._mark_started(submitted)

    def _mark_started(self, submitted: _Submitted) -> None:
        """The worker runs the task now: tell the task, arm its timeout."""
        if submitted.started:
            return
        submitted.started = True
        task = submitted.task
        try:
            wanted = task.start()
        except RuntimeError:  # already failed here (killed while queued)
            wanted = False
        if not wanted:
            self._cancel_on_cluster(submitted, "cancelled by the caller")
            return
        if task.timeout is not None and submitted.dask_future is not None:
            submitted.timer = self._loop.call_later(task.timeout, self._on_timeout, submitted)

    def _on_timeout(self, submitted: _Submitted) -> None:
        task = submitted.task
        if task.future.done():
            return
        restarted = self._restart_workers and submitted.worker is not None
        what_now = (
            f"its worker {submitted.worker} is being restarted to stop it"
            if restarted
            else "Dask cannot stop a running Python function, so it runs on to its end on "
            f"worker {submitted.worker or '?'} (pass restart_workers=True to restart the "
            "worker instead)"
        )
        task.fail(
            task.timed_out(self.name, f"it was cancelled on the Dask cluster, and {what_now}")
        )
        self._cancel_on_cluster(submitted, "timed out", restart=restarted)

    def _kill(self, task: Task) -> bool:
        submitted = self._submitted.get(task.id)
        if submitted is None or task.future.done():
            return False
        restarted = submitted.started and self._restart_workers and submitted.worker is not None
        task.fail(
            TaskKilledError(
                f"{task.describe()} was killed on request; it was cancelled on the Dask cluster"
                + (
                    f" and its worker {submitted.worker} is being restarted"
                    if restarted
                    else " (a running Python function runs on to its end on its worker: "
                    "Dask cannot stop it)"
                    if submitted.started
                    else " before it started"
                ),
                task=task.describe(),
            )
        )
        self._cancel_on_cluster(submitted, "killed", restart=restarted)
        return True

    def _cancel_on_cluster(self, submitted: _Submitted, reason: str, restart: bool = False) -> None:
        if submitted.timer is not None:
            submitted.timer.cancel()
        dask_future = submitted.dask_future
        if dask_future is not None and dask_future.done():
            dask_future = None
        worker = submitted.worker if restart else None
        if worker is not None:
            self._spawn(self._cancel_then_stop_worker(dask_future, reason, worker))
        elif dask_future is not None:
            # Batched: shutdown(cancel_futures=True) may cancel thousands at once, and
            # one request to the scheduler beats thousands.
            if not self._cancel_batch:
                self._loop.call_soon(self._flush_cancel_batch, reason)
            self._cancel_batch.append(dask_future)

    def _flush_cancel_batch(self, reason: str) -> None:
        batch, self._cancel_batch = self._cancel_batch, []
        if batch:
            self._spawn(self._quietly(self._client.cancel(batch, reason=reason)))

    async def _cancel_then_stop_worker(
        self, dask_future: Any, reason: str, worker: str | None
    ) -> None:
        """Cancel first, so that the scheduler does not rerun the task when its worker
        goes; then stop the worker so that the function stops too."""
        if dask_future is not None:
            await self._quietly(self._client.cancel([dask_future], reason=reason))
        if worker is None:
            return
        if self._cluster is not None:  # our own nannies: kill the process, they restart it
            for nanny in list(self._cluster.workers.values()):
                if getattr(nanny, "worker_address", None) == worker and nanny.pid:
                    with contextlib.suppress(psutil.Error):
                        psutil.Process(nanny.pid).kill()
                    return
        await self._quietly(self._client.restart_workers([worker], raise_for_error=False))

    def _spawn(self, coro: Any) -> None:
        """Run a coroutine on the loop in the background, holding a reference to it."""
        background = asyncio.ensure_future(coro)
        self._background.add(background)
        background.add_done_callback(self._background.discard)

    @staticmethod
    async def _quietly(awaitable: Any) -> None:
        """Best-effort cluster calls: a failure there must not break the loop."""
        # The task is failed already; the cluster cleans up on its own.
        with contextlib.suppress(Exception):
            await awaitable

    async def _watch(self, submitted: _Submitted) -> None:
        distributed = self._distributed
        task = submitted.task
        again = False
        try:
            data = await submitted.dask_future
        except distributed.KilledWorker as exc:
            again = self._rerun_alone(submitted)
            if again:
                return
            last = getattr(getattr(exc, "last_worker", None), "address", None)
            alone = (
                " It was then run once more on its own, apart from the tasks that shared "
                "those workers, and its worker died again."
                if submitted.rerun
                else ""
            )
            self._fail(
                submitted,
                DaskWorkerLostError(
                    f"{task.describe()}: every Dask worker that ran it died "
                    f"({exc.allowed_failures + 1} workers, the last {last}), so the cluster gave "
                    f"up on it.{alone} A worker dies when the task uses more memory than the "
                    "worker may, crashes the interpreter, or is killed from outside; read the "
                    "worker logs, give workers more memory, or raise "
                    "distributed.scheduler.allowed-failures",
                    pid=None,
                    exitcode=None,
                    signal_name=None,
                    task=task.describe(),
                    worker=last,
                ),
            )
        except (asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
            # fermion never cancels a watcher, so the cluster (or the connection) did.
            self._fail(
                submitted,
                DaskClusterError(
                    f"{task.describe()} was cancelled by the Dask cluster ({_one_line(exc)}); the "
                    f"scheduler at {self._address_text()} may have stopped, restarted or "
                    "lost this client; check that it runs, then submit again",
                    address=self._address_text(),
                ),
            )
        except Exception as exc:
            self._fail(
                submitted,
                DaskClusterError(
                    f"{task.describe()} failed on the Dask cluster at {self._address_text()} "
                    f"outside its function ({type(exc).__name__}: {_one_line(exc)}); check the "
                    "scheduler and worker logs",
                    address=self._address_text(),
                ),
            )
        else:
            self._mark_started(submitted)  # its start event may come after the result
            try:
                kind, value, seconds = _unpack(data)
            except BaseException as exc:  # a SystemExit from __setstate__ fails only the task
                self._fail(
                    submitted,
                    unloadable(
                        task.describe(),
                        "results",
                        type(exc).__qualname__,
                        describe_exception(exc),
                        "in the caller",
                        IMPORTABLE_RESULTS,
                    ),
                )
            else:
                if kind == "failed":
                    self._fail(submitted, value)
                else:
                    if seconds is not None and task.started_at is not None:
                        # The chunk planner sizes chunks from started_at to completion.
                        # Seen from here that span includes Dask's round trip (1 ms on a
                        # quiet machine, far more on a loaded one), which would keep the
                        # chunks of tiny tasks tiny; so date the start from the time the
                        # worker itself measured running the calls.
                        task.started_at = time.monotonic() - seconds
                    self._finish(submitted, value)
        finally:
            if again:  # the same task, under a new key: only the old Dask future goes
                self._release_dask_future(submitted)
            else:
                self._forget(submitted)
            if self._rerunning is submitted and not again:
                self._rerunning = None
            self._next_rerun()

    def _fail(self, submitted: _Submitted, exc: BaseException) -> None:
        if not submitted.task.future.done():
            self._mark_started(submitted)
            submitted.task.fail(exc)

    def _finish(self, submitted: _Submitted, outcomes: Sequence[Outcome]) -> None:
        task = submitted.task
        if task.future.done():
            return
        if -1 in submitted.rejected:  # the function itself would not pickle
            task.fail(submitted.rejected[-1][1])
            return
        if submitted.sent is not None:  # put back the calls that could not be sent
            merged: list[Outcome] = [(False, None)] * len(task.calls)
            for index, outcome in submitted.rejected.items():
                merged[index] = outcome
            for index, outcome in zip(submitted.sent, outcomes, strict=True):
                merged[index] = outcome
            outcomes = merged
        task.finish(outcomes)

    def _forget(self, submitted: _Submitted) -> None:
        if submitted.timer is not None:
            submitted.timer.cancel()
        self._submitted.pop(submitted.task.id, None)
        self._release_dask_future(submitted)

    @staticmethod
    def _release_dask_future(submitted: _Submitted) -> None:
        if submitted.dask_future is not None:
            submitted.dask_future.release()
            submitted.dask_future = None

    def _cancel_queued(self) -> None:
        for submitted in list(self._submitted.values()):
            if not submitted.started:
                submitted.task.future.cancel()
                self._cancel_on_cluster(submitted, "executor shut down")

    def _begin_close(self) -> None:
        self._spawn(self._close())

    async def _close(self) -> None:
        try:
            # Wait for the tasks still owed a result; those already settled here
            # (cancelled, killed, timed out) need nothing more from the cluster. A task
            # run again alone gets a new watcher when its turn comes: look again.
            while True:
                owed = [
                    s.watcher
                    for s in self._submitted.values()
                    if s.watcher is not None and not s.watcher.done() and not s.task.future.done()
                ]
                if not owed:
                    break
                await asyncio.gather(*owed, return_exceptions=True)
            if self._terminating and self._cluster is not None:
                self._kill_local_workers()
            self._flush_cancel_batch("executor shut down")
            pending = self._background - {asyncio.current_task()}
            if pending:  # let the scheduler take our cancellations first
                await asyncio.wait(pending, timeout=10)
            await self._close_connections()
            # Closing the client ends the other watchers; let them finish their cleanup.
            rest = [s.watcher for s in self._submitted.values() if s.watcher is not None]
            if rest:
                await asyncio.wait(rest, timeout=10)
        finally:
            self._closed_event.set()
            self._loop.stop()

    def _kill_local_workers(self) -> None:
        """Stop our local cluster's workers now, whatever they run; no restarts."""
        for nanny in list(self._cluster.workers.values()):
            with contextlib.suppress(Exception):
                nanny.close_gracefully(reason="fermion terminate")  # do not restart
            pid = getattr(nanny, "pid", None)
            if pid:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()

    async def _close_connections(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.unsubscribe_topic(self._topic)
            await self._quietly(self._client.close(timeout=10))
        if self._cluster is not None:
            await self._quietly(self._cluster.close(timeout=10))

    def _close_at_exit(self) -> None:
        """At interpreter exit: cancel everything and close what we started."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._terminating = True
        try:
            self._loop.call_soon_threadsafe(self._stop_everything, "the interpreter is exiting")
            self._loop.call_soon_threadsafe(self._begin_close)
        except RuntimeError:
            return
        self._closed_event.wait(timeout=15)

    def _stop_everything(self, reason: str) -> None:
        for submitted in list(self._submitted.values()):
            task = submitted.task
            if task.future.done():
                continue
            if not submitted.started and task.future.cancel():
                self._cancel_on_cluster(submitted, reason)
                continue
            restart = (
                self._restart_workers
                and submitted.worker is not None
                and not (self._terminating and self._cluster is not None)  # killed below
            )
            task.fail(
                TaskKilledError(
                    f"{task.describe()} was stopped: the dask backend was terminated "
                    f"({reason}); it was cancelled on the cluster"
                    + (f" and its worker {submitted.worker} restarted" if restart else ""),
                    task=task.describe(),
                )
            )
            self._cancel_on_cluster(submitted, reason, restart=restart)


def _close_all_at_exit(backends: list[DaskBackend]) -> None:
    for backend in backends:
        backend._close_at_exit()


_live_backends: ExitRegistry[DaskBackend] = ExitRegistry(_close_all_at_exit)
