"""The ``auto`` backend: run the first tasks here while measuring them, then hand every
task to the backend that fits.

What to do is decided by :class:`~fermion.executors._auto_policy.AutoPolicy`, a plain
object fed events; this module only carries them out. Tasks wait in a queue of their
own and run on threads of this process (one per core at most, as many as the policy
allows), each timed from its start to its end: wall time, its thread's CPU, the whole
process's CPU, its thread's wait for a core. A driver thread ticks the policy and
carries out its actions: the GIL probe, the cost of sending the first call to another
process (off the tasks' path), a process pool started in the background, the commit.

Nothing waits for a pool but its creation (a few milliseconds: see ``_until_spawned``).
Once the policy commits, the queued tasks go to the chosen backend in order and every
later ``submit`` goes to it directly; a process pool is committed to only once a worker
is ready, and until then the work goes on here. When
the measuring threads with one thread per core are the choice, they simply go on.
``serial`` hands nothing over: the tasks go on here, one at a time. ``submit`` never
runs a task in the caller's thread, whatever was chosen, so it returns at once.

``choice`` says what was chosen and why, and whether other programs took the cores
while it was measured; it is None while measuring. A job that ends while still being
measured ran entirely here.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import BrokenExecutor, Future
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from fermion._costs._cost import (
    RunQueueClock,
    call_transfer_estimate,
    sampled_transfer_estimate,
)
from fermion._costs._gil import GilProbe
from fermion._costs._load import CpuSample, LoadMeter, MachineLoad, own_cpu_sample
from fermion._costs._model import Advice, Machine, Option, TaskCost
from fermion._costs._platform import cpu_count, gil_enabled
from fermion._costs._startup import expected_worker_startup
from fermion.errors import describe_exception
from fermion.executors._arguments import check_workers
from fermion.executors._auto_policy import (
    Action,
    AutoPolicy,
    Commit,
    DropPool,
    StartPool,
    StartProbe,
    StopProbe,
    TaskClocks,
)
from fermion.executors._base import Backend, Outcome, Task, refuse_if_unusable
from fermion.executors._initializer import check_initializer
from fermion.executors._registry import check_options, load_backend
from fermion.executors._threads import ThreadBackend

__all__ = ["AutoBackend", "AutoChoice"]

#: The GIL probe's sleep between samples while measuring: half the default, so that
#: ten samples take 5 ms of measuring, not 10. A wake-up is still late only past the
#: probe's threshold (0.5 ms), which Python code holding the GIL passes by far.
PROBE_INTERVAL = 0.0005
#: The shortest measuring whose machine load says anything (the kernel's per-core
#: counters tick every 10 ms); shorter ones rest on the run-queue clocks alone.
LOAD_MEASURABLE = 0.1
#: The GIL's switch interval while a process pool starts (see ``_SwitchInterval``).
POOL_START_SWITCH_INTERVAL = 0.0005
#: How long the work here may wait for a process pool's thread to start its first
#: worker process (1-3 ms once the forkserver runs, 25 ms for the forkserver's own
#: start), and how often the driver looks.
POOL_SPAWN_WAIT = 0.05
POOL_SPAWN_POLL = 0.0005
#: How often the driver reads the GIL probe's samples while it runs.
PROBE_READ = 0.0025


def _nothing() -> None:
    """The task that tells when a process pool's worker is ready."""


@dataclass(frozen=True)
class AutoChoice:
    """What ``auto`` chose and why.

    ``backend`` and ``workers``: what runs the tasks. ``reason``: the findings in plain
    words. ``cost``: the measured cost of one call, and ``calls`` how many calls it
    rests on (0 when the first call was still running at the deadline). ``options``:
    the predicted speedup of each backend's best worker count. ``load``: what other
    programs took of the cores while it measured (None where unknown, or measured too
    briefly); ``waited``: the share of the measured calls' time their threads waited
    for a core (held by other programs, or by this program's own threads).
    ``handed_over``: the tasks went to the chosen backend (False while a process pool
    starts, and for good if the work ended before it was ready: it all ran here).
    """

    backend: str
    workers: int
    reason: str
    cost: TaskCost
    calls: int
    options: tuple[Option, ...]
    advice: Advice
    load: MachineLoad | None = None
    waited: float = 0.0
    handed_over: bool = True

    @property
    def busy(self) -> bool:
        """Other programs took enough of the cores to lower what was measured."""
        return self.load is not None and self.load.busy

    def __str__(self) -> str:
        plural = "s" if self.workers != 1 else ""
        return f"auto chose {self.backend} with {self.workers} worker{plural}: {self.reason}"


class _SwitchInterval:
    """The GIL's switch interval, shortened while a process pool starts.

    Starting a worker takes the pool's thread in this process many turns with the GIL,
    and next to a call holding it each turn waits a switch interval (5 ms): a worker
    took 0.3-0.4 s to start next to Python code measured here, against 0.1 s alone.
    The interval goes back to what it was once the first worker is ready (or the pool
    is dropped), unless someone else changed it meanwhile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._saved: float | None = None

    def shorten(self) -> None:
        with self._lock:
            if self._saved is None:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, POOL_START_SWITCH_INTERVAL))

    def restore(self) -> None:
        with self._lock:
            saved, self._saved = self._saved, None
            if saved is not None and sys.getswitchinterval() == min(
                saved, POOL_START_SWITCH_INTERVAL
            ):
                sys.setswitchinterval(saved)


class _ThreadClocks(threading.local):
    """Each measuring thread's run-queue clock, created on first use; it closes its
    file when its thread ends."""

    clock: RunQueueClock | None = None

    def get(self) -> RunQueueClock:
        clock = self.clock
        if clock is None:
            clock = self.clock = RunQueueClock()
        return clock


_clocks = _ThreadClocks()


class _MeasuredTask(Task):
    """A task run here while measuring: the user's future, timed from start to end."""

    __slots__ = (
        "cpu0",
        "ident",
        "original",
        "outer0",
        "owner",
        "process0",
        "queued0",
        "wall",
        "wall0",
    )

    def __init__(self, original: Task, owner: AutoBackend) -> None:
        super().__init__(
            original.fn,
            original.calls,
            batch=original.batch,
            timeout=original.timeout,
            future=original.future,
            first_item=original.first_item,
            planned=original.planned,
        )
        self.left = original.left
        self.id = original.id  # error messages name the task the user knows
        self.original = original
        self.owner = owner
        self.ident = 0
        self.wall0 = self.outer0 = self.cpu0 = self.process0 = self.queued0 = 0.0
        self.wall = 0.0  # seconds from its start to its end, once ended

    def start(self) -> bool:
        started = super().start()
        if started:
            self.original.started_at = self.started_at
            self.ident = threading.get_ident()
            # The GIL can pass to another thread between any two readings. The call's
            # wall time is read right around it (a millisecond's wait for the GIL
            # among the readings would make a tiny call look like one that waits);
            # the process's CPU is set against the wall interval around the readings
            # instead, which holds it (CPU read over a longer interval than the wall
            # would pass for native threads: 2.3 busy cores of 2).
            self.outer0 = time.perf_counter()
            self.queued0 = _clocks.get()()
            self.process0 = self.owner._process_cpu()
            self.cpu0 = time.thread_time()
            self.wall0 = time.perf_counter()
            self.owner._task_started(self)
        return started

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        self.owner._task_ending(self, outcomes)
        super().finish(outcomes)

    def fail(self, exc: BaseException) -> None:
        if self.wall0 and not self.future.done():
            self.owner._task_ending(self, None)
        super().fail(exc)

    def clocks(self) -> TaskClocks:
        wall = self.wall = time.perf_counter() - self.wall0  # first and last: see start
        mine = threading.get_ident() == self.ident
        cpu = time.thread_time() - self.cpu0 if mine else 0.0
        process_cpu = self.owner._process_cpu() - self.process0
        queued = _clocks.get()() - self.queued0 if mine else 0.0
        outer = time.perf_counter() - self.outer0
        if outer > 0:  # the process's CPU rate over the readings, over the call's wall
            process_cpu *= min(1.0, wall / outer)
        if not mine:  # failed from another thread (a timeout): its own clocks are out of reach
            cpu = min(process_cpu, wall)
        return TaskClocks(len(self.calls), wall, cpu, process_cpu, queued)


class AutoBackend(Backend):
    """Measures the first tasks here, then hands every task to the backend that fits.

    ``workers``: the pool size to use whichever pool is chosen (None: the model picks
    one, at most the number of cores for processes). ``measure_seconds``: how many
    seconds of calls to measure before choosing; ``max_measure_seconds``: choose by then
    even if the first call has not returned. ``expected_seconds``: how much work to
    assume follows (it decides whether starting processes pays). ``threads_options`` and
    ``processes_options``: passed to that backend when it is chosen (the threads
    options also to the measuring threads, which may go on as the chosen pool).
    """

    name: ClassVar[str] = "auto"

    def __init__(
        self,
        workers: int | None = None,
        *,
        measure_seconds: float = 0.05,
        max_measure_seconds: float = 0.25,
        expected_seconds: float = 1.0,
        process_startup: float | None = None,
        threads_options: dict[str, Any] | None = None,
        processes_options: dict[str, Any] | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
    ) -> None:
        check_workers(workers)
        for name, value in (
            ("measure_seconds", measure_seconds),
            ("max_measure_seconds", max_measure_seconds),
            ("expected_seconds", expected_seconds),
            ("process_startup", 0.0 if process_startup is None else process_startup),
        ):
            if not (isinstance(value, int | float) and value >= 0):
                raise ValueError(
                    f"auto backend: {name} must be a number of seconds >= 0, not {value!r}"
                )
        self._options = {
            "threads": dict(threads_options or {}),
            "processes": dict(processes_options or {}),
        }
        if initializer is not None:
            initargs = check_initializer(initializer, initargs, self.name)
            for options in self._options.values():  # every worker runs it, whichever
                options.setdefault("initializer", initializer)
                options.setdefault("initargs", initargs)
        for backend_name, options in self._options.items():
            if options:  # the processes import: only to check
                check_options(load_backend(backend_name), backend_name, options)
        if process_startup is None:
            process_startup = expected_worker_startup()
        cpus = cpu_count()
        measuring_threads = min(cpus, workers or cpus)
        self._policy = AutoPolicy(
            Machine(
                cpus=cpus,
                gil=gil_enabled(),
                process_startup=float(process_startup),
                startup_overlapped=True,
            ),
            measuring_threads=measuring_threads,
            workers=workers,
            measure_seconds=float(measure_seconds),
            max_measure_seconds=float(max_measure_seconds),
            expected_seconds=float(expected_seconds),
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[Task] = deque()
        self._in_flight: dict[Future[Any], _MeasuredTask] = {}
        self._measuring = ThreadBackend(
            workers=measuring_threads,
            **{"thread_name_prefix": "fermion-auto", **self._options["threads"]},
        )
        self._chosen: Backend | None = None
        self._choice: AutoChoice | None = None
        self._committing = False
        self._closed = False
        self._finalised = False
        self._shutdown_request: tuple[bool, bool] | None = None  # (wait, cancel_futures)
        self._driver: threading.Thread | None = None
        self._probe: GilProbe | None = None
        self._probe_since = 0.0
        self._probe_read = 0.0  # when the driver last read its samples
        self._driver_cpu = 0.0  # CPU seconds of the driver thread so far
        self._pool: Backend | None = None  # a process pool started, not yet committed to
        self._first_call: tuple[Any, tuple[Any, ...], dict[str, Any]] | None = None
        self._result_costed = False  # the cost of sending a result back is known (or due)
        self._transfers_done = 0  # 1: the first call's arguments costed
        self._load = LoadMeter(sampler=self._cpu_sample)
        self._switch = _SwitchInterval()

    # -- what users see -------------------------------------------------------------------

    @property
    def choice(self) -> AutoChoice | None:
        """What was chosen and why; None while still measuring."""
        return self._choice

    @property
    def chosen(self) -> Backend | None:
        """The backend that now runs the tasks; None while they run here."""
        return self._chosen

    @property
    def workers(self) -> int:
        """The chosen backend's workers; before that, the threads measuring here.

        The Executor sizes a ``map``'s chunks for this many workers and keeps two chunks
        per worker in flight, so once ``auto`` has chosen, the map's next chunks are
        sized for the chosen pool."""
        chosen = self._chosen
        if chosen is not None:
            return chosen.workers
        return self._policy.measuring_threads

    @property
    def broken(self) -> BrokenExecutor | None:
        """The chosen backend's, or while measuring, the measuring threads'."""
        chosen = self._chosen
        if chosen is not None:
            return chosen.broken
        return self._measuring.broken

    def wait_for_choice(self, timeout: float | None = None) -> AutoChoice | None:
        """Block until a choice is made (or ``timeout`` passes); returns ``choice``."""
        with self._changed:
            self._changed.wait_for(lambda: self._choice is not None, timeout)
            return self._choice

    # -- the Backend contract ---------------------------------------------------------------

    def submit(self, task: Task) -> None:
        chosen = self._chosen
        if chosen is not None:  # committed: straight to the chosen backend
            chosen.submit(task)
            return
        driver = None
        with self._lock:
            refuse_if_unusable(self._measuring.broken, self._closed, "the auto backend")
            chosen = self._chosen
            if chosen is None:
                self._queue.append(task)
                self._policy.task_queued(
                    len(task.calls), batch=task.batch, planned=task.planned, left=task.left
                )
                if self._first_call is None and task.calls:
                    args, kwargs = task.calls[0]
                    self._first_call = (task.fn, args, kwargs)
                feed = self._feed_locked()
                if self._driver is None:
                    driver = self._driver = threading.Thread(
                        target=self._drive, name="fermion-auto-driver", daemon=True
                    )
        if chosen is not None:
            chosen.submit(task)
            return
        if driver is not None:
            driver.start()
        self._run_here(feed)

    def kill(self, task: Task) -> bool:
        with self._lock:
            here = next((m for m in self._in_flight.values() if m.original is task), None)
            chosen = self._chosen
        if here is not None:
            return self._measuring.kill(here)
        if chosen is not None:
            return chosen.kill(task)
        return False

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._changed:
            self._closed = True
            self._shutdown_request = (wait, cancel_futures)
            dropped = list(self._queue) if cancel_futures else []
            if dropped:
                self._queue.clear()
            self._changed.notify_all()
        for task in dropped:
            task.future.cancel()
        if wait:
            with self._changed:
                # The work goes on until it is handed over or done here.
                self._changed.wait_for(self._settled_locked)
            self._finalise(wait=True)
        else:
            with self._lock:
                settled = self._settled_locked()
            if settled:
                self._finalise(wait=False)
            # else: the last task to end here finalises (see _measured_done).

    # -- running tasks here -----------------------------------------------------------------

    def _settled_locked(self) -> bool:
        """Nothing is left to run here, and no commit is under way."""
        if self._committing:
            return False
        return self._chosen is not None or (not self._queue and not self._in_flight)

    def _feed_locked(self) -> list[_MeasuredTask]:
        """The queued tasks to start here now: as many as the policy allows."""
        feed: list[_MeasuredTask] = []
        policy = self._policy
        if self._committing or self._chosen is not None:
            return feed
        slots = policy.local_slots
        while self._queue and len(self._in_flight) < slots:
            task = self._queue.popleft()
            if task.future.cancelled():
                policy.task_dropped(len(task.calls))
                continue
            measured = _MeasuredTask(task, self)
            self._in_flight[measured.future] = measured
            feed.append(measured)
        return feed

    def _run_here(self, feed: list[_MeasuredTask]) -> None:
        for measured in feed:
            measured.future.add_done_callback(self._measured_done)
            try:
                self._measuring.submit(measured)
            except RuntimeError as exc:  # shut down at interpreter exit
                measured.original.fail(exc)

    def _task_started(self, measured: _MeasuredTask) -> None:
        """In the measuring thread, under the measuring pool's lock: no submit here."""
        with self._changed:
            policy = self._policy
            if policy.decided:
                return
            widened = policy.widened
            policy.task_started(
                measured.future, measured.outer0, measured.process0, len(measured.calls)
            )
            if policy.widened != widened or len(policy.running) == 1 or policy.wants_tick:
                self._changed.notify_all()  # the driver: a new watch, more slots

    def _task_ending(self, measured: _MeasuredTask, outcomes: Sequence[Outcome] | None) -> None:
        clocks = measured.clocks()
        result_cost = None
        if outcomes and outcomes[0][0] and self._claim_result_cost():
            # Costed here, before the caller has the result, rather than kept for the
            # driver: a reference held for it could outlive the caller's, who may count
            # on dropping the result to free it (concurrent.futures' tests do).
            result_cost = sampled_transfer_estimate(outcomes[0][1])
        with self._changed:
            if result_cost is not None:
                self._policy.first_transfer(result_cost)
            self._policy.task_finished(measured.future, clocks)
            if self._policy.wants_tick:
                self._changed.notify_all()

    def _claim_result_cost(self) -> bool:
        """True for the one task whose result is to be costed (the first to end well)."""
        with self._lock:
            if self._result_costed:
                return False
            self._result_costed = True
            return True

    def _measured_done(self, future: Future[Any]) -> None:
        with self._lock:
            measured = self._in_flight.get(future)
            pause = self._policy.pause_after_call(measured.wall) if measured is not None else None
        if pause is not None:
            time.sleep(pause)  # another thread's turn with the GIL (see pause_after_call)
        with self._changed:
            self._in_flight.pop(future, None)
            feed = self._feed_locked()
            self._changed.notify_all()
            settled = self._closed and self._settled_locked()
        self._run_here(feed)
        if settled and not feed:
            self._finalise_if_requested()

    # -- the driver: ticks the policy and carries out its actions ----------------------------

    def _drive(self) -> None:
        self._load.start()
        self._driver_cpu = time.thread_time()
        policy = self._policy
        while True:
            with self._changed:
                while True:
                    if self._finalised:
                        return
                    if policy.wants_tick or self._transfer_due_locked():
                        break
                    wake = policy.next_tick()
                    now = time.perf_counter()
                    if self._probe is not None and not policy.decided:
                        # The probe's samples come with no event: read them now and then.
                        read = self._probe_read + PROBE_READ
                        wake = read if wake is None else min(wake, read)
                    if wake is not None and now >= wake:
                        break
                    self._changed.wait(None if wake is None else wake - now)
            self._cost_transfers()
            with self._changed:
                if self._finalised:
                    return
                probe = self._probe
                if probe is not None:
                    self._probe_read = time.perf_counter()
                    policy.probe_update(
                        probe.samples,
                        probe.late,
                        self._probe_read - self._probe_since,
                        PROBE_INTERVAL,
                    )
                process_cpu = self._process_cpu()  # before the wall clock: see _MeasuredTask
                actions = policy.tick(time.perf_counter(), process_cpu)
                feed = self._feed_locked()
            self._run_here(feed)
            self._carry_out(actions)
            self._driver_cpu = time.thread_time()

    def _process_cpu(self) -> float:
        """This process's CPU seconds, less the driver's own (costing a transfer, say),
        which would read as the measured calls' native threads."""
        driver = self._driver
        if driver is not None and driver.ident == threading.get_ident():
            self._driver_cpu = time.thread_time()
        # The driver's clock before the process's: read after, it could already count
        # driver work done after the process clock was read, and the call measured from
        # here would seem to have used that CPU too.
        spent = self._driver_cpu
        return time.process_time() - spent

    def _transfer_due_locked(self) -> bool:
        return self._transfers_done == 0 and self._first_call is not None

    def _cost_transfers(self) -> None:
        """Cost sending the first call, in the driver: off the tasks' path. (Its result is
        costed where it ends: see _task_ending.)"""
        with self._lock:
            if not self._transfer_due_locked():
                return
            what: Any = self._first_call
        cost = call_transfer_estimate(*what)
        with self._lock:
            self._transfers_done += 1
            self._policy.first_transfer(cost)
            self._first_call = None  # its arguments are not kept alive

    def _carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, StartProbe):
                probe = GilProbe(interval=PROBE_INTERVAL)
                probe.start()
                with self._lock:
                    self._probe, self._probe_since = probe, time.perf_counter()
                    self._probe_read = self._probe_since
            elif isinstance(action, StopProbe):
                self._stop_probe()
            elif isinstance(action, StartPool):
                self._record_choice(handed_over=False)
                self._start_pool(action.workers, action.starting)
            elif isinstance(action, Commit):
                self._commit(action)
            elif isinstance(action, DropPool):
                self._drop_pool()

    def _stop_probe(self) -> None:
        with self._lock:
            probe, self._probe = self._probe, None
        if probe is not None:
            probe.stop(wait=False)  # its samples are read; it ends by itself

    def _cpu_sample(self) -> CpuSample:
        pool = self._pool or self._chosen
        statistics = getattr(pool, "statistics", None)
        pids = statistics().get("worker_pids", ()) if callable(statistics) else ()
        return own_cpu_sample(pids)

    def _record_choice(self, *, handed_over: bool) -> None:
        policy = self._policy
        advice, cost = policy.advice, policy.cost
        if advice is None or cost is None:
            return
        with self._lock:
            previous = self._choice
        if previous is not None:
            load = previous.load
        else:
            # The kernel's counters tick every 10 ms: a shorter measuring tells nothing,
            # and reading them costs turns with the GIL that the calls may hold.
            load = None
            if self._load.elapsed() >= LOAD_MEASURABLE:
                load = self._load.stop()
        reason = policy.reason
        waited = policy.busy_share()
        if load is not None and load.busy:
            reason += f"; {load.describe()}"
        commit = policy.committed
        choice = AutoChoice(
            backend=commit.backend if commit is not None else advice.backend,
            workers=commit.workers if commit is not None else advice.workers,
            reason=reason,
            cost=cost,
            calls=policy.calls,
            options=advice.options,
            advice=advice,
            load=load,
            waited=waited,
            handed_over=handed_over,
        )
        with self._changed:
            self._choice = choice
            self._changed.notify_all()

    def _start_pool(self, workers: int, starting: int) -> None:
        """Start a process pool in the background with ``starting`` of its ``workers``;
        its first ready worker commits, and the rest start then."""
        if self._policy.machine.gil:
            self._switch.shorten()
        try:
            backend_cls = load_backend("processes")
            pool = cast(Any, backend_cls)(workers=starting, **self._options["processes"])
            warmups = [Task(_nothing, [((), {})], batch=False) for _ in range(starting)]
            with self._lock:
                self._pool = pool
            for warmup in warmups:
                pool.submit(warmup)
            self._until_spawned(pool, warmups[0].future)
        except Exception as exc:
            self._switch.restore()
            with self._changed:
                self._policy.pool_failed(describe_exception(exc))
                self._changed.notify_all()
            return
        with self._changed:
            self._policy.pool_launched()
            feed = self._feed_locked()
            self._changed.notify_all()
        self._run_here(feed)
        warmups[0].future.add_done_callback(self._pool_answered)

    @staticmethod
    def _until_spawned(pool: Any, answered: Future[Any]) -> None:
        """Wait (``POOL_SPAWN_WAIT`` at most) until the pool's thread has started its
        first worker process, which takes it many turns with the GIL: a few milliseconds
        while no call here holds it (the policy lets none start meanwhile)."""
        deadline = time.monotonic() + POOL_SPAWN_WAIT
        while not pool.statistics()["worker_pids"] and not answered.done():
            if time.monotonic() >= deadline:
                return
            time.sleep(POOL_SPAWN_POLL)

    def _pool_answered(self, future: Future[Any]) -> None:
        self._switch.restore()
        if future.cancelled():
            return  # dropped: the work ended first
        error = future.exception()
        with self._changed:
            if self._finalised:
                return
            if error is None:
                self._policy.pool_ready()
            else:
                self._policy.pool_failed(f"{type(error).__name__}: {error}")
            self._changed.notify_all()

    def _commit(self, commit: Commit) -> None:
        """Hand the queued tasks to the chosen backend in order, then every later one.
        Serial hands nothing over: the tasks go on here, one at a time."""
        if commit.backend == "serial":
            self._record_choice(handed_over=True)
            self._drop_pool()
            with self._changed:
                feed = self._feed_locked()
                self._changed.notify_all()
            self._run_here(feed)
            return
        with self._lock:
            if self._finalised:
                return
            self._committing = True
            pool, self._pool = self._pool, None
        chosen: Backend
        try:
            if commit.backend == "processes" and pool is not None:
                chosen, pool = pool, None
                if chosen.workers < commit.workers:  # the core the work here used is free now
                    cast(Any, chosen).grow(commit.workers)  # a ProcessBackend
            elif commit.reuse:
                chosen = self._measuring
            else:
                chosen = ThreadBackend(
                    workers=commit.workers,
                    **{
                        "thread_name_prefix": f"fermion-auto-{commit.backend}",
                        **self._options["threads"],
                    },
                )
        finally:
            if pool is not None:  # not the choice after all
                pool.shutdown(wait=False, cancel_futures=True)
        while True:
            with self._changed:
                if not self._queue:
                    self._chosen = chosen
                    self._committing = False
                    self._changed.notify_all()
                    break
                tasks = list(self._queue)
                self._queue.clear()
            for task in tasks:
                if task.future.cancelled():
                    continue
                try:
                    chosen.submit(task)
                except RuntimeError as exc:
                    task.fail(exc)
        self._record_choice(handed_over=True)
        with self._lock:
            settled = self._closed and self._settled_locked()
        if settled:
            self._finalise_if_requested()

    def _drop_pool(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            # In a thread of its own: a worker still starting may hold the pool's thread
            # until its main module is imported (seconds, for some scripts), and the
            # work it was started for is done. Not a daemon: the interpreter's exit
            # waits for the workers to be gone.
            threading.Thread(
                target=cast(Any, pool).terminate,
                args=("the work ended before the pool was ready",),
                name="fermion-auto-drop-pool",
            ).start()
            self._record_choice(handed_over=False)

    # -- the end ------------------------------------------------------------------------------

    def _finalise_if_requested(self) -> None:
        """Finish a ``shutdown(wait=False)`` that came while tasks still ran here."""
        with self._lock:
            request = self._shutdown_request
        if request is not None and not request[0]:
            self._finalise(wait=False)

    def _finalise(self, *, wait: bool) -> None:
        with self._changed:
            if self._finalised:
                return
            self._finalised = True
            actions = self._policy.finished_early()
            cancel_futures = self._shutdown_request[1] if self._shutdown_request else False
            chosen = self._chosen
            self._changed.notify_all()
        self._carry_out(actions)
        self._stop_probe()
        self._drop_pool()
        self._switch.restore()
        if chosen is not None:
            chosen.shutdown(wait=wait, cancel_futures=cancel_futures)
        if chosen is not self._measuring:
            self._measuring.shutdown(wait=wait)

    def __repr__(self) -> str:
        state = "measuring" if self._choice is None else str(self._choice)
        return f"<AutoBackend pid={os.getpid()} {state}>"
