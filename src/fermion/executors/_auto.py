"""The ``auto`` backend: measure the first tasks, then commit to the backend that fits.

How it works. Tasks wait in a queue of their own. While measuring, they run one at a
time on a one-thread ``threads`` backend (so timeouts and kills behave as there), with
each call timed (wall and CPU seconds), the first call's arguments and result pickled
as the processes backend would, and a GIL probe running (``fermion.measure._gil``).
As soon as the calls measured add up to ``measure_seconds`` (or clearly tiny calls
pile up, or two calls show mostly waiting, or the first call runs past
``max_measure_seconds``), the cost model (``fermion.measure._model``) predicts every
backend's speedup, and ``auto`` commits:

- tasks too small to be worth a pool: ``serial``;
- waiting (I/O), or computing without the GIL (NumPy), or any CPU work on a
  free-threaded build: ``threads``;
- Python code that holds the GIL, worth sending to other processes: ``processes``.

From then on every task goes to the chosen backend unchanged. ``choice`` says what
was chosen and why; it is None while measuring. The queue keeps the order tasks were
submitted in. A job that ends while still measuring ran entirely on the measuring
thread, as serial work would.

Whether a process pool pays for its start-up depends on how much work follows, which
``auto`` cannot see; it assumes the work goes on for at least ``expected_seconds``
(1 s) or as long as the tasks already queued, whichever is longer. Tasks from
``submit`` travel one call each; tasks from ``map``/``imap`` are chunks, which the
Executor enlarges once a pool runs them.

Calls shown to be tiny (under 20 µs) are measured in the caller's thread, as serial
would run them: handing each to the measuring thread would cost more than the call.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, ClassVar, cast

from fermion.executors._base import Backend, Task
from fermion.executors._registry import check_options, load_backend
from fermion.executors._serial import SerialBackend
from fermion.executors._threads import ThreadBackend
from fermion.measure._cost import cpu_count, gil_enabled, known_worker_startup, pickle_cost
from fermion.measure._gil import GilProbe
from fermion.measure._model import MAX_THREADS, Advice, Machine, Option, TaskCost, recommend

__all__ = ["AutoBackend", "AutoChoice"]

#: Calls shorter than this are "clearly tiny": no pool can win, the GIL does not matter.
TINY_CALL = 20e-6
#: How many tiny calls settle the question.
TINY_CALLS = 16
#: Seconds to start a pool of worker processes, unless ``fermion.profile`` measured it
#: in this process already (a loaded 2-core laptop: 0.3-0.6 s; a quiet machine: less).
DEFAULT_PROCESS_STARTUP = 0.3
#: Fewer GIL probe samples than this say nothing about the GIL.
MIN_PROBE_SAMPLES = 10


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
    """The task the measuring thread runs: the user's future, a timed function."""

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
        self.wall = 0.0
        self.cpu = 0.0
        self.transfer = 0.0
        self.transfer_bytes = 0
        self.picklable = True
        self.args_measured = False
        self.result_measured = False
        self.running_since: tuple[float, float] | None = None  # (perf_counter, process_time)
        self.tasks = 0
        self.batches = 0  # tasks from map/imap, whose chunks grow once a pool runs them
        self.probe: GilProbe | None = None  # runs only while a call is being measured
        self.probe_samples = 0  # from earlier probes, stopped while nothing ran
        self.probe_late = 0

    def _samples(self) -> tuple[int, int]:
        """(samples, late samples) of every probe so far."""
        samples, late = self.probe_samples, self.probe_late
        if self.probe is not None:
            samples += self.probe.samples
            late += self.probe.late
        return samples, late

    def retire_probe(self) -> GilProbe | None:
        """Detach the running probe (the caller stops it), keeping its samples."""
        probe = self.probe
        if probe is not None:
            self.probe_samples, self.probe_late = self._samples()
            self.probe = None
        return probe

    def cost(self, gil: bool) -> TaskCost:
        if not gil:
            held = 0.0
        elif self._samples()[0] >= MIN_PROBE_SAMPLES:
            samples, late = self._samples()
            held = late / samples
        else:  # too few samples to tell: assume Python code holds the GIL
            held = 1.0
        if self.calls:
            wall = self.wall / self.calls
            cpu = self.cpu / self.calls
        elif self.running_since is not None:  # the first call is still running
            wall = time.perf_counter() - self.running_since[0]
            cpu = time.process_time() - self.running_since[1]
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


class _TimedFunction:
    """Wraps the user's function while measuring: times each call, pickles the first."""

    def __init__(self, fn: Any, backend: AutoBackend) -> None:
        self.fn = fn
        self.backend = backend

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        backend = self.backend
        if backend._choice is not None:
            return self.fn(*args, **kwargs)
        backend._call_starting(self.fn, args, kwargs)
        # The CPU clock (a system call) is read outside the wall-clock interval.
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        result: Any = None
        try:
            result = self.fn(*args, **kwargs)
            return result
        finally:
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            backend._call_finished(wall, cpu, result)


class AutoBackend(Backend):
    """Measures the first tasks, then hands every task to the backend that fits them.

    ``workers``: the pool size to use whichever pool is chosen (None: the model picks
    one, at most the number of cores for processes). ``measure_seconds``: how many
    seconds of calls to measure before choosing; ``max_measure_seconds``: choose by then
    even if the first call has not returned. ``expected_seconds``: how much work to
    assume follows (it decides whether starting processes pays). ``threads_options`` and
    ``processes_options``: passed to that backend when it is chosen.
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
        }
        for backend_name, options in self._options.items():
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
        self._in_flight: _MeasuredTask | None = None
        self._meter = _Meter()
        self._choice: AutoChoice | None = None
        self._chosen: Backend | None = None
        self._draining = False
        self._decision_due = False
        self._closed = False
        self._shutdown_request: tuple[bool, bool] | None = None  # (wait, cancel_futures)
        self._measuring = ThreadBackend(workers=1, thread_name_prefix="fermion-auto-measure")
        self._inline = SerialBackend()
        self._watchdog: threading.Thread | None = None

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
        """The chosen backend's workers; before the choice, the most ``auto`` may use
        (the Executor sizes the chunks of a ``map`` started now for that many)."""
        chosen = self._chosen
        if chosen is not None:
            return chosen.workers
        return self._requested_workers or max(self._machine.cpus, MAX_THREADS)

    def wait_for_choice(self, timeout: float | None = None) -> AutoChoice | None:
        """Block until a choice is made (or ``timeout`` passes); returns ``choice``."""
        with self._changed:
            self._changed.wait_for(lambda: self._choice is not None, timeout)
            return self._choice

    # -- the Backend contract ---------------------------------------------------------------

    def submit(self, task: Task) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            chosen = self._chosen
            inline = None
            feed = None
            if chosen is None or self._draining:
                chosen = None
                if self._measure_inline_locked():
                    inline = self._start_measuring_locked(task)
                else:
                    self._pending.append(task)
                    feed = self._next_measured_locked()
        if chosen is not None:
            chosen.submit(task)
        elif inline is not None:
            # Calls this tiny would spend longer handed to the measuring thread than
            # running: measure them here, in the caller's thread, as serial would run them.
            inline.future.add_done_callback(self._measured_done)
            self._inline.submit(inline)
        elif feed is not None:
            self._measure(feed)

    def kill(self, task: Task) -> bool:
        with self._lock:
            in_flight = self._in_flight
            chosen = self._chosen
        if in_flight is not None and in_flight.original is task:
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
        return self._in_flight is None and not self._pending

    def _next_measured_locked(self) -> _MeasuredTask | None:
        """The next task to measure, if none is running and no choice was made."""
        if self._choice is not None or self._in_flight is not None:
            return None
        while self._pending:
            task = self._pending.popleft()
            if task.future.cancelled():
                continue
            return self._start_measuring_locked(task)
        return None

    def _measure_inline_locked(self) -> bool:
        meter = self._meter
        return (
            self._choice is None
            and self._in_flight is None
            and not self._pending
            and meter.calls > 0
            and meter.wall / meter.calls < TINY_CALL
        )

    def _start_measuring_locked(self, task: Task) -> _MeasuredTask:
        measured = _MeasuredTask(task, _TimedFunction(task.fn, self))
        self._in_flight = measured
        self._meter.tasks += 1
        self._meter.batches += task.batch
        if self._watchdog is None:
            self._watchdog = threading.Thread(
                target=self._watch, name="fermion-auto-watchdog", daemon=True
            )
            self._watchdog.start()
        self._changed.notify_all()
        return measured

    def _measure(self, measured: _MeasuredTask) -> None:
        measured.future.add_done_callback(self._measured_done)
        try:
            self._measuring.submit(measured)
        except RuntimeError as exc:  # cannot happen while open; fail loudly if it does
            measured.original.fail(exc)

    def _measured_done(self, _future: Future[Any]) -> None:
        idle_probe = None
        with self._changed:
            self._in_flight = None
            decide_now = self._decision_due and self._choice is None
        if decide_now:
            # Between two tasks: decide here rather than wait for the watchdog to wake.
            self._decide()
            return
        with self._changed:
            feed = self._next_measured_locked()
            if feed is None and self._choice is None:
                # Nothing to measure now: no probe thread waking up every millisecond.
                idle_probe = self._meter.retire_probe()
            self._changed.notify_all()
            settled = self._closed and self._settled_locked()
        if idle_probe is not None:
            idle_probe.stop()
        if feed is not None:
            self._measure(feed)
        elif settled:
            self._finalise_if_requested()

    def _call_starting(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        meter = self._meter
        with self._lock:
            first, meter.args_measured = not meter.args_measured, True
        if first:
            sent = pickle_cost((fn, args, kwargs))
            with self._lock:
                meter.transfer += sent.seconds
                meter.transfer_bytes += sent.size
                meter.picklable = meter.picklable and sent.ok
        with self._lock:
            tiny = meter.calls > 0 and meter.wall / meter.calls < TINY_CALL
            if meter.probe is None and self._machine.gil and not tiny:
                meter.probe = GilProbe()
                meter.probe.start()
            meter.running_since = (time.perf_counter(), time.process_time())
            self._changed.notify_all()

    def _call_finished(self, wall: float, cpu: float, result: Any) -> None:
        meter = self._meter
        with self._lock:
            first, meter.result_measured = not meter.result_measured, True
        if first:
            returned = pickle_cost(result)
            with self._lock:
                meter.transfer += returned.seconds
                meter.transfer_bytes += returned.size
                meter.picklable = meter.picklable and returned.ok
        with self._lock:
            meter.calls += 1
            meter.wall += wall
            meter.cpu += cpu
            meter.running_since = None
            waiting = meter.calls >= 2 and meter.wall >= 0.01 and meter.cpu < 0.25 * meter.wall
            if (
                meter.wall >= self._measure_seconds
                or (meter.calls >= TINY_CALLS and meter.wall / meter.calls < TINY_CALL)
                or waiting  # mostly waiting: threads whatever the GIL does
            ):
                self._decision_due = True
            self._changed.notify_all()

    def _watch(self) -> None:
        """The one thread that decides: when enough calls were measured, or when a call
        has run past ``max_measure_seconds``. It also drains the queue into the choice."""
        with self._changed:
            while True:
                if self._choice is not None or (self._closed and self._settled_locked()):
                    return
                if self._decision_due:
                    break
                running = self._meter.running_since
                if running is None:
                    self._changed.wait()
                    continue
                left = running[0] + self._max_measure_seconds - time.perf_counter()
                if left <= 0:
                    break
                self._changed.wait(left)
        self._decide()

    # -- committing -----------------------------------------------------------------------------

    def _decide(self) -> None:
        with self._changed:
            if self._choice is not None:
                return
            cost = self._meter.cost(self._machine.gil)
            calls = self._meter.calls
            queued = sum(len(t.calls) for t in self._pending)
            expected = int(self._expected_seconds / cost.wall) if cost.wall > 0 else 0
            items = max(1, calls + queued + 1, expected)
            # submit() sends one call per task; map's chunks grow to fit once a pool runs.
            chunksize = None if self._meter.batches else 1
            advice = recommend(
                cost, self._machine, items, workers=self._requested_workers, chunksize=chunksize
            )
            probe = self._meter.probe
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
        try:
            backend_cls = load_backend(advice.backend)
            options = self._options.get(advice.backend, {})
            chosen = cast(Any, backend_cls)(workers=workers, **options)
        except Exception as exc:
            # The queued tasks must run somewhere: serially, and the choice says why.
            chosen = SerialBackend()
            with self._changed:
                self._choice = replace(
                    self._choice,
                    backend="serial",
                    workers=1,
                    reason=(
                        f"{self._choice.reason}; but the {advice.backend} backend could not "
                        f"start ({type(exc).__name__}: {exc}), so the tasks run serially"
                    ),
                )
        with self._changed:
            self._chosen = chosen
            self._changed.notify_all()
        self._drain(chosen)

    def _drain(self, chosen: Backend) -> None:
        """Hand the queued tasks over in order; tasks submitted meanwhile join the queue
        (a serial backend runs tasks inside ``submit``, which can submit more)."""
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
            probe = self._meter.probe
            self._changed.notify_all()
        if probe is not None:
            probe.stop()
        if chosen is not None:
            chosen.shutdown(wait=wait, cancel_futures=cancel_futures)
        self._measuring.shutdown(wait=wait)
