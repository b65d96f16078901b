"""The ``auto`` backend: measure the first tasks, then commit to the backend that fits.

How it works. Tasks wait in a queue of their own. While measuring, they run on a
``threads`` backend of one thread per core (so the work goes on in parallel while it is
measured, and timeouts and kills behave as there). Each call is timed: wall seconds,
the CPU seconds of its own thread (``time.thread_time``), and the seconds its thread
waited for a core held by other programs (``/proc/thread-self/schedstat``, not the
work's doing). The first call's arguments and result are costed as the processes
backend would send them (``transfer_estimate``: large buffers by their size). Once a
call has proved not tiny, a GIL probe runs (``fermion._costs._gil``). As soon as the
calls measured add up to ``measure_seconds`` (or clearly tiny calls pile up, or calls
show mostly waiting, or a few calls clearly leave the GIL free or there is none, or
the first call runs past ``max_measure_seconds``), the cost
model (``fermion._costs._model``) predicts every backend's speedup, and ``auto``
commits:

- tasks too small to be worth a pool: ``serial`` (tiny calls from ``submit``, or
  from a ``map`` with a GIL);
- waiting (I/O), or computing without the GIL (NumPy), or any CPU work on a
  free-threaded build: ``threads``, also for calls too small to hand over one by one
  when a ``map`` sends them (its chunks of thousands of calls are worth handing over,
  and without a GIL they run in parallel);
- Python code that holds the GIL, worth sending to other processes: ``processes``.

Calls measured side by side share the GIL: a call that holds it waits while the other
holds it, and that wait is not the call's own. The time a call spent off its core is
therefore split: waiting alone is the call's (I/O, sleep); waiting next to other calls
counts as the call's only as far as the GIL probe found the GIL free.

From then on every task goes to the chosen backend unchanged. ``choice`` says what
was chosen and why; it is None while measuring. The queue keeps the order tasks were
submitted in. When ``threads`` with one thread per core is chosen, the measuring pool
simply goes on as the chosen backend. A job that ends while still measuring ran
entirely on the measuring threads.

Whether a process pool pays for its start-up depends on how much work follows, which
``auto`` cannot see; it assumes the work goes on for at least ``expected_seconds``
(1 s) or as long as the tasks already queued, whichever is longer. Starting worker
processes takes a tenth of a second or more: as soon as the calls are clearly Python
code holding the GIL and the model would choose processes on what it saw so far, the
pool starts while the measuring goes on (and is shut down unused if the choice
differs). Tasks from ``submit`` travel one call each; tasks from ``map``/``imap`` are
chunks, which the Executor enlarges once a pool runs them.

Tiny calls cost more to hand over than to run. Until a call has proved not tiny (it
runs past ``PROBE_AFTER``, or took at least ``TINY_CALL``) one measuring thread runs
them and no GIL probe starts; once they are shown tiny (under 20 µs), the queued
tasks are measured in the thread at hand (the caller's, or the measuring thread that
finished the last one), as serial would run them; and once ``serial`` is chosen,
``runs_inline`` tells a ``map`` to run its chunks in the thread that reads the
results, not in the thread that happened to decide, one chunk at a time as the
reader reaches it (so that the results are read while still in the CPU's cache).
The model judges a ``map`` by its chunks (calls per chunk times the call's cost
against the hand-off; the chunks grow to thousands of tiny calls, unless they keep a
fixed size, such as one call each under a ``task_timeout``): with a GIL the chunks
of Python calls would take turns, so serial; on a free-threaded build the measuring
threads go on running them in parallel.

A watchdog thread watches calls that may run long: it widens the measuring once a
first call runs past ``PROBE_AFTER``, and decides at ``max_measure_seconds``.
Starting it costs more than a thousand tiny calls, so it starts only once a call is
not known to be tiny: the thread handing over the first task waits while that call
could still be tiny (20 µs, plus 0.2 ms for its measuring); if it is still running
then, the watchdog starts at once, while it runs; if it ended tiny, none starts
while the calls stay tiny (one does as soon as they are not). While the calls are
tiny, the calls that finish decide.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor, Future
from dataclasses import dataclass, replace
from typing import Any, ClassVar, cast

from fermion._costs._cost import (
    RunQueueClock,
    cpu_count,
    gil_enabled,
    known_worker_startup,
    transfer_estimate,
)
from fermion._costs._gil import GilProbe
from fermion._costs._model import Advice, Machine, Option, TaskCost, recommend
from fermion.errors import FermionError
from fermion.executors._base import Backend, Task
from fermion.executors._initializer import check_initializer
from fermion.executors._registry import check_options, load_backend
from fermion.executors._serial import SerialBackend
from fermion.executors._threads import ThreadBackend

__all__ = ["AutoBackend", "AutoChoice"]


def _nothing() -> None:
    """The task that starts an early process pool's workers."""


#: Calls shorter than this are "clearly tiny": no pool can win, the GIL does not matter.
TINY_CALL = 20e-6
#: How many tiny calls settle the question.
TINY_CALLS = 16
#: A first call still running after this long is not tiny: the GIL probe starts.
PROBE_AFTER = 0.001
#: Longest wait of the thread handing over the first task for a measuring thread to
#: start it (a busy machine), before it leaves the watching to a watchdog thread.
FIRST_START_WAIT = 0.05
#: How long after a tiny first call its measuring is done with it (costing its result,
#: reading the clocks): the thread handing it over waits ``TINY_CALL`` plus this.
FIRST_CALL_SLACK = 200e-6
#: Seconds to start a pool of worker processes, unless ``fermion.profile`` measured it
#: in this process already (a loaded 2-core laptop: 0.3-0.6 s; a quiet machine: less).
DEFAULT_PROCESS_STARTUP = 0.3
#: The measuring threads go on as the chosen pool unless more threads promise this
#: much more: a new pool costs threads to start and tasks to hand over.
KEEP_MEASURING_THREADS = 1.10
#: Longest single wait of a submit for the queue to drain (so that Ctrl-C is seen).
_DRAIN_SLICE = 0.25
#: Calls that settle the question when they clearly leave the GIL free.
CLEAR_CALLS = 4
#: Fewer GIL probe samples than this say nothing about the GIL. (Reading as few as
#: four was tried: two measuring threads taking turns with the GIL leave the probe a
#: few samples, one of them on time in a gap, and pure Python read as 75-88% held went
#: to threads or serial in 3 of 25 runs.)
MIN_PROBE_SAMPLES = 10
#: The GIL probe's sleep between samples while measuring: half the default, so that
#: ``MIN_PROBE_SAMPLES`` take 5 ms of measuring, not 10. A wake-up is still late only
#: past the probe's threshold (0.5 ms), which Python code holding the GIL (a switch
#: interval, 5 ms) passes by far.
PROBE_INTERVAL = 0.0005
#: Seconds of GIL probing, nearly without a sample on time, that are enough to start
#: a process pool early.
EARLY_PROBE_SECONDS = 0.01


@dataclass(frozen=True)
class AutoChoice:
    """What ``auto`` chose and why.

    ``backend`` and ``workers``: what runs the tasks now. ``reason``: the findings in
    plain words. ``cost``: the measured cost of one call, and ``calls`` how many calls
    it rests on (0 when the first call was still running at the deadline). ``options``:
    the predicted speedup of each backend's best worker count.
    """

    backend: str
    workers: int
    reason: str
    cost: TaskCost
    calls: int
    options: tuple[Option, ...]
    advice: Advice

    def __str__(self) -> str:
        plural = "s" if self.workers != 1 else ""
        return f"auto chose {self.backend} with {self.workers} worker{plural}: {self.reason}"


class _MeasuredTask(Task):
    """The task a measuring thread runs: the user's future, a timed function."""

    __slots__ = ("original",)

    def __init__(self, original: Task, fn: Any) -> None:
        super().__init__(
            fn,
            original.calls,
            batch=original.batch,
            timeout=original.timeout,
            future=original.future,
        )
        self.id = original.id  # error messages name the task the user knows
        self.original = original

    def start(self) -> bool:
        started = super().start()
        if started:
            self.original.started_at = self.started_at
        return started


class _Meter:
    """What the measuring calls have shown so far. Guarded by the backend's lock."""

    def __init__(self) -> None:
        self.calls = 0
        self.wall = 0.0  # wall seconds of the calls, as they ran (side by side)
        self.cpu = 0.0  # CPU seconds of the calls' own threads
        self.off_core_alone = 0.0  # seconds off the core, no other call running
        self.off_core_shared = 0.0  # seconds off the core next to other calls (GIL?)
        self.transfer = 0.0
        self.transfer_bytes = 0
        self.picklable = True
        self.args_measured = False
        self.result_measured = False
        # Calls running now, by thread: (perf_counter, process_time) at their start, and
        # the start's number while the call runs alone (-1 once another call ran too).
        self.running: dict[int, tuple[float, float, int]] = {}
        self.starts = 0
        self.tasks = 0
        self.batches = 0  # tasks from map/imap, whose chunks grow once a pool runs them
        self.batch_calls = (0, 0)  # the fewest and most calls of one of those chunks
        self.probe: GilProbe | None = None  # runs only while calls are being measured
        self.probe_samples = 0  # from earlier probes, stopped while nothing ran
        self.probe_late = 0
        self.probes_started = 0
        self.probe_since = 0.0
        self.probe_seconds = 0.0  # of earlier probes

    @property
    def tiny(self) -> bool:
        """The calls measured so far are clearly tiny."""
        return self.calls > 0 and self.wall / self.calls < TINY_CALL

    def _samples(self) -> tuple[int, int]:
        """(samples, late samples) of every probe so far."""
        samples, late = self.probe_samples, self.probe_late
        if self.probe is not None:
            samples += self.probe.samples
            late += self.probe.late
        return samples, late

    def start_probe(self) -> None:
        """Start a GIL probe unless one runs (the caller holds the lock)."""
        if self.probe is None:
            self.probe = GilProbe(interval=PROBE_INTERVAL)
            self.probe.start()
            self.probes_started += 1
            self.probe_since = time.perf_counter()

    def retire_probe(self) -> GilProbe | None:
        """Detach the running probe (the caller stops it), keeping its samples."""
        probe = self.probe
        if probe is not None:
            self.probe_samples, self.probe_late = self._samples()
            self.probe_seconds = self.probing()
            self.probe = None
        return probe

    def probing(self) -> float:
        """Seconds the probes have run, all together."""
        running = time.perf_counter() - self.probe_since if self.probe is not None else 0.0
        return self.probe_seconds + running

    def gil_held(self, gil: bool) -> float:
        """The fraction of the time the GIL was held, as far as the probe can tell."""
        if not gil:
            return 0.0
        samples, late = self._samples()
        if samples >= MIN_PROBE_SAMPLES:
            return late / samples
        return 1.0  # too few samples to tell: assume Python code holds the GIL

    def call_wall(self, held: float) -> float:
        """Seconds of all calls as each would take alone: their CPU, the time they
        waited alone, and the share of their waiting next to others that was not the
        GIL's (a call waiting for the GIL held by another call waits for that call)."""
        return self.cpu + self.off_core_alone + self.off_core_shared * (1.0 - held)

    def waiting(self, gil: bool) -> bool:
        """Two or more calls, at least 10 ms in all, mostly spent waiting."""
        if self.calls < 2 or self.wall < 0.01:
            return False
        return self.cpu < 0.25 * self.call_wall(self.gil_held(gil))

    def gil_free(self, gil: bool) -> bool:
        """A few calls, 10 ms in all, that clearly leave the GIL free (or there is no
        GIL): threads will run them in parallel, and more calls would not say more."""
        if self.calls < CLEAR_CALLS or self.wall < 0.01:
            return False
        if not gil:
            return True
        samples, late = self._samples()
        return samples >= MIN_PROBE_SAMPLES and late <= 0.2 * samples

    def cost(self, gil: bool) -> TaskCost:
        held = self.gil_held(gil)
        if self.calls:
            wall = self.call_wall(held) / self.calls
            cpu = self.cpu / self.calls
        elif self.running:  # the first calls are still running
            started = min(self.running.values())
            wall = time.perf_counter() - started[0]
            cpu = (time.process_time() - started[1]) / len(self.running)
        else:
            wall = cpu = 0.0
        return TaskCost(
            wall=max(wall, 0.0),
            cpu=min(max(cpu, 0.0), max(wall, 0.0) * cpu_count()),
            gil_held=min(max(held, 0.0), 1.0),
            transfer=self.transfer,
            transfer_bytes=self.transfer_bytes,
            picklable=self.picklable,
        )


class _ThreadClocks(threading.local):
    """Each measuring thread's run-queue clock, created on first use; it closes its
    file when its thread ends."""

    clock: RunQueueClock | None = None

    def get(self) -> RunQueueClock:
        clock = self.clock
        if clock is None:
            clock = self.clock = RunQueueClock()
        return clock


class _TimedFunction:
    """Wraps the user's function while measuring: times each call, costs the first's
    arguments and result. ``inline``: calls run in the caller's thread (tiny calls),
    which keeps no run-queue clock open."""

    def __init__(self, fn: Any, backend: AutoBackend, *, inline: bool) -> None:
        self.fn = fn
        self.backend = backend
        self.inline = inline

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:  # the call may pass self=
        backend = self.backend
        if backend._decision_due:  # measured enough: run as the chosen backend will
            return self.fn(*args, **kwargs)
        # Open this thread's run-queue clock (a few hundred µs the first time on
        # 3.13t) before the call is marked as started: the first call's watch counts
        # from that mark.
        queued_clock = None if self.inline else backend._clocks.get()
        backend._call_starting(self.fn, args, kwargs)
        queued0 = queued_clock() if queued_clock is not None else 0.0
        # The CPU clock is read outside the wall-clock interval.
        cpu0 = time.thread_time()
        wall0 = time.perf_counter()
        result: Any = None
        try:
            result = self.fn(*args, **kwargs)
            return result
        finally:
            wall = time.perf_counter() - wall0
            cpu = time.thread_time() - cpu0
            queued = queued_clock() - queued0 if queued_clock is not None else 0.0
            backend._call_finished(wall, cpu, queued, result)


class AutoBackend(Backend):
    """Measures the first tasks, then hands every task to the backend that fits them.

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
        if workers is not None and not (isinstance(workers, int) and workers >= 1):
            raise ValueError(
                f"auto backend: workers must be a positive integer or None, not {workers!r}"
            )
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
            "serial": {},
        }
        if initializer is not None:
            initargs = check_initializer(initializer, initargs, self.name)
            for options in self._options.values():  # every worker runs it, whichever
                options.setdefault("initializer", initializer)
                options.setdefault("initargs", initargs)
        for backend_name, options in self._options.items():
            if options and backend_name != "serial":  # the processes import: only to check
                check_options(load_backend(backend_name), backend_name, options)
        self._requested_workers = workers
        self._measure_seconds = float(measure_seconds)
        self._max_measure_seconds = float(max_measure_seconds)
        self._expected_seconds = float(expected_seconds)
        if process_startup is None:
            process_startup = known_worker_startup() or DEFAULT_PROCESS_STARTUP
        self._machine = Machine(
            cpus=cpu_count(), gil=gil_enabled(), process_startup=float(process_startup)
        )

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: deque[Task] = deque()
        self._in_flight: dict[Future[Any], _MeasuredTask] = {}
        self._meter = _Meter()
        self._choice: AutoChoice | None = None
        self._chosen: Backend | None = None
        self._draining = False
        self._decision_due = False
        self._closed = False
        self._shutdown_request: tuple[bool, bool] | None = None  # (wait, cancel_futures)
        # One measuring thread per core (or per requested worker, if fewer): the work
        # proceeds in parallel while it is measured. Created with the threads options,
        # so that it can go on as the chosen backend when threads on every core win.
        self._measuring_threads = min(self._machine.cpus, workers or self._machine.cpus)
        # One thread until a call proves not tiny: tiny work pays for no second thread.
        self._concurrency = 1
        self._widened = False
        self._measuring = ThreadBackend(
            workers=self._measuring_threads,
            **{"thread_name_prefix": "fermion-auto-measure", **self._options["threads"]},
        )
        self._clocks = _ThreadClocks()
        self._inline = SerialBackend(**self._options["serial"])
        self._watchdog: threading.Thread | None = None
        self._drainer: int | None = None  # the thread handing the queue to the choice
        self._early_checked = False
        self._early_starting = False
        self._early_pool: Backend | None = None  # started, not yet taken or dropped
        self._early_started: Backend | None = None  # the one started, for the record

    # -- what users see -------------------------------------------------------------------

    @property
    def choice(self) -> AutoChoice | None:
        """What was chosen and why; None while still measuring."""
        return self._choice

    @property
    def chosen(self) -> Backend | None:
        """The backend that now runs the tasks; None while still measuring."""
        return self._chosen

    @property
    def workers(self) -> int:
        """The chosen backend's workers; before the choice, the measuring threads.

        The Executor sizes the chunks of a ``map`` for this many workers and keeps two
        chunks per worker in flight: while measuring, a few small chunks, so that tiny
        work is not cut into a hundred chunks before it is known to be tiny, and so
        that little is queued in chunks sized for the wrong backend. Once ``auto``
        has chosen, the map sizes its next chunks for the chosen pool."""
        chosen = self._chosen
        if chosen is not None:
            return chosen.workers
        return self._measuring_threads

    @property
    def runs_inline(self) -> bool:
        """True once ``serial`` is chosen: tasks run inside ``submit``, in the thread
        that submits them. A ``map`` then sends its chunks from the thread that reads
        its results (not from the thread that finished the last measured chunk), so
        that the work and the reading do not pass the GIL back and forth, and sends
        the next only once the reader has taken the last one's results."""
        return isinstance(self._chosen, SerialBackend)

    @property
    def broken(self) -> BrokenExecutor | None:
        """The chosen backend's, or while measuring, the measuring pools'."""
        chosen = self._chosen
        if chosen is not None:
            return chosen.broken
        return self._measuring.broken or self._inline.broken

    def wait_for_choice(self, timeout: float | None = None) -> AutoChoice | None:
        """Block until a choice is made (or ``timeout`` passes); returns ``choice``."""
        with self._changed:
            self._changed.wait_for(lambda: self._choice is not None, timeout)
            return self._choice

    # -- the Backend contract ---------------------------------------------------------------

    def submit(self, task: Task) -> None:
        broken = self.broken
        if broken is not None:
            raise broken.fresh() if isinstance(broken, FermionError) else broken
        with self._changed:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if (
                self._draining
                and isinstance(self._chosen, SerialBackend)
                and self._drainer != threading.get_ident()
            ):
                # Serial was chosen and another thread runs the queued tasks: wait for
                # them, then run this one here, as serial would (not in that thread).
                while self._draining:
                    self._changed.wait(_DRAIN_SLICE)
            chosen = self._chosen
            inline = None
            feed: list[_MeasuredTask] = []
            if chosen is None or self._draining:
                chosen = None
                if self._measure_inline_locked():
                    inline = self._start_measuring_locked(task, inline=True)
                else:
                    self._pending.append(task)
                    feed = self._next_measured_locked()
        if chosen is not None:
            chosen.submit(task)
        elif inline is not None:
            # Calls this tiny would spend longer handed to a measuring thread than
            # running: measure them here, in the caller's thread, as serial would run them.
            inline.future.add_done_callback(self._measured_done)
            self._inline.submit(inline)
        else:
            for measured in feed:
                self._measure(measured)

    def kill(self, task: Task) -> bool:
        with self._lock:
            in_flight = next((m for m in self._in_flight.values() if m.original is task), None)
            chosen = self._chosen
        if in_flight is not None:
            return self._measuring.kill(in_flight)
        if chosen is not None:
            return chosen.kill(task)
        return False

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._changed:
            self._closed = True
            dropped = list(self._pending) if cancel_futures and self._choice is None else []
            if dropped:
                self._pending.clear()
            self._shutdown_request = (wait, cancel_futures)
            self._changed.notify_all()
        for task in dropped:
            task.future.cancel()
        if wait:
            with self._changed:
                # Measuring goes on until it settles: a choice, or nothing left to run.
                self._changed.wait_for(self._settled_locked)
            self._finalise(wait=True)
        else:
            with self._lock:
                settled = self._settled_locked()
            if settled:
                self._finalise(wait=False)
            # else: whoever settles it (a measured task ending, the watchdog) finalises.

    # -- measuring ----------------------------------------------------------------------------

    def _settled_locked(self) -> bool:
        if self._choice is not None:
            return not self._draining
        return not self._in_flight and not self._pending

    def _next_measured_locked(self) -> list[_MeasuredTask]:
        """The next tasks to measure: as many as there are idle measuring threads,
        while no choice is made."""
        feed: list[_MeasuredTask] = []
        if self._choice is not None or self._decision_due:
            return feed
        while self._pending and len(self._in_flight) < self._concurrency:
            task = self._pending.popleft()
            if task.future.cancelled():
                continue
            feed.append(self._start_measuring_locked(task, inline=False))
        if feed and self._widened and self._machine.gil:
            # The probe stops while nothing is measured; calls measured again need it,
            # or the choice would rest on the few samples taken before the pause.
            self._meter.start_probe()
        return feed

    def _measure_inline_locked(self) -> bool:
        return (
            self._choice is None
            and not self._decision_due
            and not self._in_flight
            and not self._pending
            and self._meter.tiny
        )

    def _start_measuring_locked(self, task: Task, *, inline: bool) -> _MeasuredTask:
        measured = _MeasuredTask(task, _TimedFunction(task.fn, self, inline=inline))
        self._in_flight[measured.future] = measured
        meter = self._meter
        meter.tasks += 1
        if task.batch:
            calls = len(task.calls)
            fewest, most = meter.batch_calls
            meter.batch_calls = (min(fewest, calls) if meter.batches else calls, max(most, calls))
            meter.batches += 1
        self._changed.notify_all()
        return measured

    def _measure(self, measured: _MeasuredTask) -> None:
        measured.future.add_done_callback(self._measured_done)
        try:
            self._measuring.submit(measured)
        except RuntimeError as exc:  # cannot happen while open; fail loudly if it does
            measured.original.fail(exc)
        if self._watchdog is None:
            self._watch_first_call(measured)

    def _watch_first_call(self, measured: _MeasuredTask) -> None:
        """Start the watchdog unless the calls are known to be tiny.

        A call that may run long needs watching (``_watch``), but starting a thread
        costs more than a thousand tiny calls (a few hundred µs on 3.13t). So the
        thread handing over the first task waits while that call could still be tiny:
        ``TINY_CALL`` from its start plus ``FIRST_CALL_SLACK`` for measuring it, and
        up to ``FIRST_START_WAIT`` for a measuring thread to start it on a busy
        machine. If it ends tiny, no watchdog starts (one does once a call proves not
        tiny); else the watchdog starts at once, while the call runs."""
        meter = self._meter
        with self._changed:
            handed = time.perf_counter()
            # Only for the first task: a later one may be handed over from a measured
            # task's callback, on the measuring thread it would wait for.
            first = meter.tasks == 1
            while (
                first
                and self._watchdog is None
                and not meter.calls
                and self._choice is None
                and not measured.future.done()
            ):
                if meter.running:
                    deadline = min(meter.running.values())[0] + TINY_CALL + FIRST_CALL_SLACK
                else:
                    deadline = handed + FIRST_START_WAIT
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._changed.wait(left)
            needed = self._watch_needed_locked()
        if needed:
            self._start_watchdog()

    def _watch_needed_locked(self) -> bool:
        """No watchdog yet, no choice due yet, and the calls are not known to be tiny."""
        return (
            self._watchdog is None
            and self._choice is None
            and not self._decision_due
            and not self._meter.tiny
        )

    def _start_watchdog(self) -> None:
        """Start the watchdog once, outside the lock: ``Thread.start`` waits for the
        new thread to run, and the measuring threads need the lock meanwhile."""
        with self._lock:
            if self._watchdog is not None:
                return
            watchdog = self._watchdog = threading.Thread(
                target=self._watch, name="fermion-auto-watchdog", daemon=True
            )
        watchdog.start()

    def _measured_done(self, future: Future[Any]) -> None:
        """A measured task ended: decide, or measure the next ones. Once the calls are
        known to be tiny, the next tasks run right here, one after another, as serial
        would run them: handing each to a measuring thread would cost more than it."""
        while True:
            following = self._after_measured(future)
            if following is None:
                return
            self._inline.submit(following)  # runs it now, in this thread
            future = following.future

    def _after_measured(self, future: Future[Any]) -> _MeasuredTask | None:
        """What follows a measured task; returns the next task to run in this thread."""
        idle_probe = None
        with self._changed:
            self._in_flight.pop(future, None)
            decide_now = self._decision_due and self._choice is None
        if decide_now:
            # Between two tasks: decide here rather than wait for the watchdog to wake.
            self._decide()
            return None
        with self._changed:
            following = None
            if self._meter.tiny and not self._in_flight:
                following = self._next_inline_locked()
            feed = [] if following is not None else self._next_measured_locked()
            if following is None and not feed and not self._in_flight and self._choice is None:
                # Nothing to measure now: no probe thread waking up every millisecond.
                idle_probe = self._meter.retire_probe()
            self._changed.notify_all()
            settled = self._closed and self._settled_locked()
        if idle_probe is not None:
            idle_probe.stop()
        if following is not None:
            return following
        for measured in feed:
            self._measure(measured)
        if not feed and settled:
            self._finalise_if_requested()
        return None

    def _next_inline_locked(self) -> _MeasuredTask | None:
        """The next queued task, to be measured in the current thread."""
        if self._choice is not None or self._decision_due:
            return None
        while self._pending:
            task = self._pending.popleft()
            if not task.future.cancelled():
                return self._start_measuring_locked(task, inline=True)
        return None

    def _call_starting(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        meter = self._meter
        with self._lock:
            first, meter.args_measured = not meter.args_measured, True
        if first:
            sent = transfer_estimate((fn, args, kwargs))
            with self._lock:
                meter.transfer += sent.seconds
                meter.transfer_bytes += sent.size
                meter.picklable = meter.picklable and sent.ok
        with self._lock:
            # A call that proved not tiny widens the measuring (the watchdog does it for
            # a first call that runs long): tiny work never pays for more threads. The
            # calls that follow may run long: they need the watchdog (handing a task
            # over starts it, else this call does).
            proved = meter.calls > 0 and not meter.tiny
            feed = self._widen_locked() if proved else []
            watch = proved and not feed and self._watch_needed_locked()
            meter.starts += 1
            # A call measured next to another shares the GIL with it; it is known alone
            # only if no other call ran when it started and none started until it ended.
            meter.running[threading.get_ident()] = (
                time.perf_counter(),
                time.process_time(),
                meter.starts if not meter.running else -1,
            )
            for key, (since, cpu, alone_mark) in list(meter.running.items()):
                if alone_mark >= 0 and alone_mark != meter.starts:
                    meter.running[key] = (since, cpu, -1)  # no longer alone
            self._changed.notify_all()
        for measured in feed:
            self._measure(measured)
        if watch:
            self._start_watchdog()

    def _call_finished(self, wall: float, cpu: float, queued: float, result: Any) -> None:
        meter = self._meter
        with self._lock:
            first, meter.result_measured = not meter.result_measured, True
        if first:
            returned = transfer_estimate(result)
            with self._lock:
                meter.transfer += returned.seconds
                meter.transfer_bytes += returned.size
                meter.picklable = meter.picklable and returned.ok
        with self._lock:
            mine = meter.running.pop(threading.get_ident(), None)
            alone = mine is not None and mine[2] >= 0 and not meter.running
            # Time neither on the core nor waiting for one: I/O, sleep, or the GIL.
            off_core = max(0.0, wall - cpu - queued)
            wall = max(wall - queued, 0.0)  # another program's use of the core is not ours
            # One thread's CPU clock cannot pass its wall clock; it reads more for calls
            # of a microsecond, as it also counts reading the clocks.
            cpu = min(cpu, wall)
            meter.calls += 1
            meter.wall += wall
            meter.cpu += cpu
            if alone:
                meter.off_core_alone += off_core
            else:
                meter.off_core_shared += off_core
            if (
                meter.wall >= self._measure_seconds
                or (meter.calls >= TINY_CALLS and meter.tiny)
                or meter.waiting(self._machine.gil)  # threads whatever the GIL does
                or meter.gil_free(self._machine.gil)  # threads too: no need to wait
            ):
                self._decision_due = True
            early = self._early_pool_wanted_locked()
            self._changed.notify_all()
        if early is not None:
            self._start_early_pool(early)

    def _early_pool_wanted_locked(self) -> int | None:
        """Worker count of a process pool to start now, or None.

        Starting worker processes takes a tenth of a second or more, which ``auto``
        would add to the measuring when it chooses processes. Once the GIL probe shows
        the calls clearly are Python code holding the GIL (the only work processes
        are chosen for) and the model would choose processes on what was measured so
        far, the pool starts while the measuring goes on; if the final choice differs,
        it is shut down unused. Asked after each call until it is clear."""
        if self._early_checked or self._decision_due or not self._machine.gil:
            return None
        meter = self._meter
        probing = meter.probing()
        if probing < EARLY_PROBE_SECONDS or meter.calls < 1:
            return None
        # The probe wakes on time every millisecond while the GIL is free; while Python
        # code holds it, a sample waits a switch interval or more (or never comes, when
        # two measuring threads take turns with it). Few samples on time: GIL-bound.
        samples, late = meter._samples()
        on_time = (samples - late) * PROBE_INTERVAL
        cost = meter.cost(self._machine.gil)
        if on_time > 0.25 * probing or cost.cpu < 0.75 * cost.wall:
            return None  # not clear yet: asked again after the next call
        self._early_checked = True
        advice = self._advise_locked(cost)
        if advice.backend != "processes":
            return None
        self._early_starting = True
        return advice.workers

    def _start_early_pool(self, workers: int) -> None:
        """Start a process pool of ``workers`` now; ``_decide`` takes it or drops it."""
        pool: Backend | None = None
        try:
            backend_cls = load_backend("processes")
            pool = cast(Any, backend_cls)(workers=workers, **self._options["processes"])
            # The workers start with the pool's first task: one that does nothing.
            pool.submit(Task(_nothing, [((), {})], batch=False))
        except Exception:  # the decision will try again and say why if it fails
            pool = None
        finally:
            with self._changed:
                self._early_starting = False
                # A decision for processes waits for this pool; any other goes on.
                keep = pool is not None and self._chosen is None and not self._closed
                if keep:
                    self._early_pool = self._early_started = pool
                self._changed.notify_all()
        if pool is not None and not keep:
            pool.shutdown(wait=False)

    def _watch(self) -> None:
        """The one thread that decides: when enough calls were measured, or when a call
        has run past ``max_measure_seconds``. When a first call runs past
        ``PROBE_AFTER`` it widens the measuring (see ``_widen_locked``)."""
        meter = self._meter
        while True:
            feed: list[_MeasuredTask] = []
            with self._changed:
                while True:
                    if self._choice is not None or (self._closed and self._settled_locked()):
                        return
                    if self._decision_due:
                        break
                    if not meter.running:
                        self._changed.wait()
                        continue
                    started = min(meter.running.values())[0]
                    now = time.perf_counter()
                    wake = started + self._max_measure_seconds
                    if now >= wake:
                        break
                    if not self._widened and not meter.tiny:
                        if now >= started + PROBE_AFTER:
                            feed = self._widen_locked()
                            if feed:
                                break  # start them outside the lock, then watch on
                        else:
                            wake = min(wake, started + PROBE_AFTER)
                    self._changed.wait(wake - now)
            if not feed:
                break
            for measured in feed:
                self._measure(measured)
        self._decide()

    def _widen_locked(self) -> list[_MeasuredTask]:
        """The calls proved not tiny: measure on every measuring thread, with the GIL
        probe running. Returns the tasks to start now."""
        if self._widened:
            return []
        self._widened = True
        if self._machine.gil:
            self._meter.start_probe()
        self._concurrency = self._measuring_threads
        return self._next_measured_locked()

    # -- committing -----------------------------------------------------------------------------

    def _advise_locked(self, cost: TaskCost) -> Advice:
        """What the model recommends for the work measured so far."""
        queued = sum(len(t.calls) for t in self._pending)
        expected = int(self._expected_seconds / cost.wall) if cost.wall > 0 else 0
        items = max(1, self._meter.calls + queued + len(self._in_flight), expected)
        chunksize = self._chunksize_locked()
        advice = recommend(
            cost, self._machine, items, workers=self._requested_workers, chunksize=chunksize
        )
        if (
            advice.backend == "threads"
            and advice.workers != self._measuring_threads
            and self._requested_workers is None
        ):
            # The measuring threads go on as the chosen pool at no cost: keep them
            # unless more threads promise clearly more (waiting work does).
            measuring = recommend(
                cost,
                self._machine,
                items,
                workers=self._measuring_threads,
                chunksize=chunksize,
                backends=("threads",),
            )
            if measuring.speedup * KEEP_MEASURING_THREADS >= advice.speedup:
                advice = replace(measuring, options=advice.options)
        return advice

    def _chunksize_locked(self) -> int | None:
        """How many calls a pool would be handed at once, as the model needs it.

        ``submit`` sends one call per task. A ``map`` sends chunks: grown ones (their
        sizes differ: the Executor sizes them from measured times, and enlarges them
        once a pool runs them) leave the chunk size to the model (None); chunks that
        all had the same size (a ``chunksize`` given, or 1 for a ``task_timeout``)
        will keep it."""
        meter = self._meter
        if not meter.batches:
            return 1
        fewest, most = meter.batch_calls
        return most if fewest == most else None

    def _decide(self) -> None:
        with self._changed:
            if self._choice is not None:
                return
            self._decision_due = True  # measured calls from now on run untimed
            cost = self._meter.cost(self._machine.gil)
            calls = self._meter.calls
            advice = self._advise_locked(cost)
            probe = self._meter.retire_probe()
            measured = (
                f"measured {calls} call{'s' if calls != 1 else ''}"
                if calls
                else (f"the first call was still running after {cost.wall:.3g} s")
            )
            self._choice = AutoChoice(
                backend=advice.backend,
                workers=advice.workers,
                reason=f"{measured}: {advice.reason}",
                cost=cost,
                calls=calls,
                options=advice.options,
                advice=advice,
            )
            self._draining = True
        if probe is not None:
            probe.stop()
        workers = None if advice.backend == "serial" else advice.workers
        chosen: Backend
        with self._changed:
            if advice.backend == "processes":
                # A pool started early is (nearly) ready: wait for it, not for a new one.
                self._changed.wait_for(lambda: not self._early_starting, timeout=60)
            early, self._early_pool = self._early_pool, None
        if early is not None and (advice.backend != "processes" or early.workers != workers):
            early.shutdown(wait=False)  # started for nothing: the evidence changed
            early = None
        if early is not None:
            chosen = early  # started while measuring: its workers are (nearly) up
        elif advice.backend == "threads" and advice.workers == self._measuring_threads:
            chosen = self._measuring  # already running: no new pool, no hand-over
        else:
            try:
                backend_cls = load_backend(advice.backend)
                options = self._options.get(advice.backend, {})
                chosen = cast(Any, backend_cls)(workers=workers, **options)
            except Exception as exc:
                # The queued tasks must run somewhere: serially, and the choice says why.
                chosen = SerialBackend(**self._options["serial"])
                with self._changed:
                    self._choice = replace(
                        self._choice,
                        backend="serial",
                        workers=1,
                        reason=(
                            f"{self._choice.reason}; but the {advice.backend} backend could "
                            f"not start ({type(exc).__name__}: {exc}), so the tasks run serially"
                        ),
                    )
        with self._changed:
            self._chosen = chosen
            self._changed.notify_all()
        self._drain(chosen)

    def _drain(self, chosen: Backend) -> None:
        """Hand the queued tasks over in order; tasks submitted meanwhile join the queue
        (a serial backend runs tasks inside ``submit``, which can submit more; other
        threads wait for the queue to empty, see ``submit``)."""
        with self._lock:
            self._drainer = threading.get_ident()
        while True:
            with self._changed:
                if not self._pending:
                    self._draining = False
                    self._changed.notify_all()
                    settled = self._closed
                    break
                task = self._pending.popleft()
            try:
                chosen.submit(task)
            except RuntimeError as exc:
                task.fail(exc)
        if settled:
            self._finalise_if_requested()

    def _finalise_if_requested(self) -> None:
        """Finish a ``shutdown(wait=False)`` that came while measuring or draining."""
        with self._lock:
            request = self._shutdown_request
        if request is not None and not request[0]:
            self._finalise(wait=False)

    def _finalise(self, *, wait: bool) -> None:
        with self._lock:
            cancel_futures = self._shutdown_request[1] if self._shutdown_request else False
            chosen = self._chosen
            probe = self._meter.retire_probe()
            early, self._early_pool = self._early_pool, None
            self._changed.notify_all()
        if probe is not None:
            probe.stop()
        if early is not None:
            early.shutdown(wait=wait)
        if chosen is not None:
            chosen.shutdown(wait=wait, cancel_futures=cancel_futures)
        if chosen is not self._measuring:
            self._measuring.shutdown(wait=wait)
