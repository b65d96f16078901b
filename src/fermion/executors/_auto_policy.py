"""What ``auto`` decides, as a plain object: events in, actions out.

The ``auto`` backend (``_auto.py``) runs the first tasks in this process, on threads,
and feeds :class:`AutoPolicy` what it sees: a task queued, a task started or finished
with its clocks, the GIL probe's samples, the cost of sending the first call to another
process, a process pool's workers ready, and a tick of the clock. The policy answers
with how many tasks may run here at once (``local_slots``), whether tasks go to a
chosen backend now (``handing_over``), when it wants the next tick (``next_tick``), and
the actions to take (``tick``): start or stop the GIL probe, start a process pool in
the background, drop it, commit to a backend. It reads no clock and starts no thread:
the tests drive it with numbers.

How it judges a call. Its wall time, the CPU time of its own thread, the CPU time of
the whole process while it ran alone (so that NumPy's BLAS threads count), and the time
its thread waited for a core other programs held (``queued``: not the call's doing,
but a busy machine, named in the choice). Calls measured side by side share the GIL:
time a call spent off its core next to other calls counts as its own only as far as
the GIL probe found the GIL free.

How it avoids losing. Small calls run one at a time (a second thread costs more than
they gain); a call that proves not small starts the GIL probe, and the measuring widens
to one thread per core once the probe finds the GIL free (at once without a GIL),
unless a call already keeps every core busy by itself (native threads: more calls at
once would only fight over the cores). Once enough is measured the cost model
(``fermion._costs._model``) chooses. Processes are never waited for: the pool starts
in the background, the work goes on here meanwhile (one call at a time when it holds
the GIL, so the workers starting up get the other cores), and tasks move to the pool
only once a worker is ready. If the work ends first, it simply ran here. Only the
pool's creation, a few milliseconds, has the GIL to itself: next to calls that hold it
in C code, each of the many turns it takes would wait for a call to end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from fermion._costs._cost import PickleCost
from fermion._costs._model import Advice, Machine, TaskCost, _seconds, recommend

__all__ = [
    "AutoPolicy",
    "Commit",
    "DropPool",
    "StartPool",
    "StartProbe",
    "StopProbe",
    "TaskClocks",
]

#: Calls shorter than this are "clearly tiny": no pool can win, the GIL does not matter.
TINY_CALL = 20e-6
#: Calls shorter than this run on one thread while measured: a second thread costs
#: more to start (0.1-0.5 ms) than such calls gain from it in a short job.
SMALL_CALL = 200e-6
#: How many tiny (or small) calls settle the question.
TINY_CALLS = 16
#: A first call still running after this long is not tiny: the measuring widens.
PROBE_AFTER = 0.001
#: Calls that settle the question when they clearly leave the GIL free, or wait.
CLEAR_CALLS = 4
#: Fewer GIL probe samples than this say nothing about the GIL. (Two measuring threads
#: taking turns with the GIL leave the probe few samples, one of them on time in a gap.)
MIN_PROBE_SAMPLES = 10
#: Samples that show the GIL free often enough to measure calls side by side: held by
#: Python code or C code, each sample waits for it (a switch interval, or a call).
FREE_SAMPLES = 4
#: Seconds of GIL probing, nearly without a sample on time, that show the GIL held:
#: Python code holding it makes every sample wait a switch interval (5 ms), so ten
#: samples would take 50 ms.
CLEARLY_HELD_AFTER = 0.01
#: Measuring ends, on the calls finished by then, this many ``measure_seconds`` after
#: the first task started (a map's chunks may hold many calls, known only at its end).
WINDOW = 2.0
#: The measuring threads go on as the chosen pool unless more threads promise this
#: much more: a new pool costs threads to start and tasks to hand over.
KEEP_MEASURING_THREADS = 1.5
#: A call running alone that keeps this share of the cores busy (its process CPU over
#: its wall time) runs native threads of its own (BLAS): running more calls at once
#: would only fight over the cores.
NATIVE_THREADS_SHARE = 0.6
#: A task still running after this many times what its calls take at the measured
#: mean holds a call longer than any measured: the choice waits for it (or for the
#: window's end, which counts it), rather than judge the work by its short calls.
OUTLASTS = 3.0
#: On a machine where other programs hold cores, threads that compute without the GIL
#: are made enough to get this share of the cores they compete for: the kernel shares a
#: core between the threads ready to run, so N threads beside H other programs' get
#: N / (N + H) of the machine (the standard library's default of cores + 4 threads
#: happens to do the same; it is the most made).
FAIR_SHARE = 0.85
#: While a process pool starts beside calls that hold the GIL, each call here is followed
#: by a pause of this share of its time (at most ``POOL_START_PAUSE``): the pool's
#: thread needs the GIL after each of its system calls, and a call in C code (a regular
#: expression, a JSON parse) lets no other thread have it until it returns.
POOL_START_PAUSE_SHARE = 0.05
POOL_START_PAUSE = 0.0005
#: While measuring, each task of calls this long or longer is followed by a moment
#: without the GIL (``MEASURING_YIELD`` seconds): a call in C code gives it to no other
#: thread until it returns, and the next one would keep it, the driver and the probe
#: waiting a switch interval (5 ms) before they may even ask for it.
YIELD_AFTER = 0.001
MEASURING_YIELD = 50e-6
#: Other programs holding fewer cores than this leave the worker count alone.
BUSY_CORES = 0.5
#: The process's CPU rate says something once the measuring has run this long.
RATE_SECONDS = 0.01
#: Measuring threads that wait this share of their time for a core are crowded: by
#: other programs when this process gets less than the machine, by the calls' own
#: native threads when it keeps ``FULL`` of the cores busy.
CROWDED = 0.25
FULL = 0.85
#: Cores a call's native threads must keep busy beyond its own thread to count: other
#: threads' bits of work meanwhile (the caller's, the collector's) are not native threads.
NATIVE_HELPERS = 0.5
#: The shortest call whose process CPU says anything about native threads (other
#: threads' bits of work, a clock's granularity, weigh too much in shorter ones).
NATIVE_MEASURABLE = 0.001


@dataclass(frozen=True)
class TaskClocks:
    """What one task measured here: ``calls`` in it; ``wall`` seconds from its start to
    its end; ``cpu`` seconds of its thread; ``process_cpu`` seconds of the whole process
    over the same interval; ``queued`` seconds its thread was ready to run but waited
    for a core (other programs, or our own threads on too few cores)."""

    calls: int
    wall: float
    cpu: float
    process_cpu: float
    queued: float = 0.0


@dataclass(frozen=True)
class StartProbe:
    """Start the GIL probe (and report its samples with ``probe_samples``)."""


@dataclass(frozen=True)
class StopProbe:
    """Stop the GIL probe: nothing more to learn."""


@dataclass(frozen=True)
class StartPool:
    """Start a process pool for ``workers`` in the background with ``starting`` of them
    (one short when a call runs here meanwhile, so that it keeps its core; the rest
    start on the commit); report ``pool_launched`` once it is created (no call starts
    here until then, when the calls hold the GIL), and ``pool_ready``."""

    workers: int
    starting: int


@dataclass(frozen=True)
class DropPool:
    """Stop the process pool started for nothing (the work ended before it was ready)."""


@dataclass(frozen=True)
class Commit:
    """Hand every task from now on to ``backend`` with ``workers``; ``reuse``: the
    measuring threads are that backend already."""

    backend: str
    workers: int
    reuse: bool = False


Action = StartProbe | StopProbe | StartPool | DropPool | Commit


@dataclass
class _Running:
    started: float
    process_cpu: float  # the process's CPU clock at the start
    calls: int
    alone: bool  # no other task ran at any moment of it so far


class AutoPolicy:
    """The measuring and the choice of ``auto`` (see the module doc).

    ``machine``: cores, GIL, process start-up. ``workers``: the pool size the user
    fixed (None: the model chooses). ``measuring_threads``: threads available here.
    ``measure_seconds``: seconds of calls to measure before choosing;
    ``max_measure_seconds``: choose by then even if no call has returned;
    ``expected_seconds``: how much work to assume follows.
    """

    def __init__(
        self,
        machine: Machine,
        *,
        measuring_threads: int,
        workers: int | None = None,
        measure_seconds: float = 0.05,
        max_measure_seconds: float = 0.25,
        expected_seconds: float = 1.0,
    ) -> None:
        self.machine = machine
        self.measuring_threads = measuring_threads
        self.workers = workers
        self.measure_seconds = measure_seconds
        self.max_measure_seconds = max_measure_seconds
        self.expected_seconds = expected_seconds
        # What is known of the calls.
        self.calls = 0
        self.wall = 0.0  # seconds of the calls as they ran, waits for a core excluded
        self.cpu = 0.0  # CPU seconds of the calls, native threads included when known
        self.off_core_alone = 0.0  # seconds off the core while no other call ran
        self.off_core_shared = 0.0  # seconds off the core next to other calls (the GIL?)
        self.queued = 0.0  # seconds the measuring threads waited for a core
        # the same two of the calls that ran next to others: the crowding is theirs
        self.wall_side_by_side = 0.0
        self.queued_side_by_side = 0.0
        self._since_cpu = 0.0  # the process's CPU clock when the first task started
        self.process_rate: float | None = None  # cores this process kept busy since
        # cores each task kept busy running alone (its native threads), by task, in order
        self._alone_busy: dict[Any, float] = {}
        self.transfer = PickleCost(0, 0.0)
        self.probe_samples = 0
        self.probe_late = 0
        self.probe_seconds = 0.0
        self.probe_interval = 0.0
        self.probing = False
        self.queued_calls = 0  # calls queued and not yet finished
        self.planned_batches = 0  # a map's chunks, sized as calls are measured
        self.batches = 0  # a map's chunks of a size the caller fixed
        self.batch_calls = (0, 0)  # fewest and most calls of those
        self.left: int | None = None  # calls still to come, where a map's input tells
        self.running: dict[Any, _Running] = {}
        self.since: float | None = None  # when the first task started
        # What was decided.
        self.widened = False
        self.advice: Advice | None = None
        self.cost: TaskCost | None = None
        self.reason = ""
        self.pool_workers = 0  # a process pool starting (0: none)
        self.pool_launching = False  # its creation is under way in this process
        self.committed: Commit | None = None
        self._due = False  # enough is measured: the next tick decides
        self._postponed = False  # it was due, and waits (see tick)
        # (seconds, process CPU seconds, calls running) of calls still running at the
        # deadline, when none had returned
        self._partial: tuple[float, float, int] | None = None
        # (seconds so far, calls) of the chunks still running when the window closed
        self._running_share: tuple[float, int] = (0.0, 0)
        self._actions: list[Action] = []

    # -- what the backend asks --------------------------------------------------------

    @property
    def local_slots(self) -> int:
        """How many tasks may run in this process at once now."""
        if self.committed is not None:
            return 1 if self.committed.backend == "serial" else 0
        if self.advice is not None:  # a process pool is starting
            if self.pool_launching:
                return 0  # the pool's creation has the GIL to itself (see StartPool)
            return 1 if self._gil_bound() else self.measuring_threads
        return self.measuring_threads if self.widened else 1

    def pause_after_call(self, wall: float) -> float | None:
        """Seconds to pause here after a task of ``wall`` seconds, before the next
        (None: no pause), so that another thread can take the GIL: while measuring, the
        driver and the GIL probe (``YIELD_AFTER``); while a process pool starts, its
        thread, which needs it often (``POOL_START_PAUSE_SHARE``)."""
        if not self.machine.gil or self.committed is not None:
            return None
        if self.advice is None:
            return MEASURING_YIELD if wall >= YIELD_AFTER else None
        if not self.pool_workers or not self._gil_bound():
            return None
        return min(POOL_START_PAUSE, POOL_START_PAUSE_SHARE * wall)

    @property
    def handing_over(self) -> bool:
        """Tasks go to the committed backend from now on (serial: they stay here)."""
        return self.committed is not None and self.committed.backend != "serial"

    @property
    def decided(self) -> bool:
        return self.advice is not None

    @property
    def wants_tick(self) -> bool:
        """Something is due now: call ``tick``."""
        return bool(self._due or self._actions)

    def next_tick(self) -> float | None:
        """When the next ``tick`` is wanted (the clock the events use), or None."""
        if self.advice is not None or not self.running:
            return None
        started = min(r.started for r in self.running.values())
        wake = started + self.max_measure_seconds
        if not self.widened and not self.probing and not self._small():
            wake = min(wake, started + PROBE_AFTER)
        if self.calls and self.since is not None:
            wake = min(wake, self.since + WINDOW * self.measure_seconds)
            if self._crowded_by_whom_unknown():
                wake = min(wake, self.since + RATE_SECONDS)
        return wake

    # -- events -----------------------------------------------------------------------

    def task_queued(
        self, calls: int, *, batch: bool, planned: bool = False, left: int | None = None
    ) -> None:
        """A task of ``calls`` was queued: from ``submit`` (not ``batch``), or a map's
        chunk, ``planned`` when its size grows with what is measured, ``left``: the
        calls of its map still to come, where the input's length tells."""
        self.left = left
        self.queued_calls += calls
        if planned:
            self.planned_batches += 1
        elif batch:
            fewest, most = self.batch_calls
            self.batch_calls = (min(fewest, calls) if self.batches else calls, max(most, calls))
            self.batches += 1

    def task_dropped(self, calls: int) -> None:
        """A queued task will not run (cancelled)."""
        self.queued_calls = max(0, self.queued_calls - calls)

    def task_started(self, key: Any, now: float, process_cpu: float, calls: int = 1) -> None:
        if self.since is None:
            self.since, self._since_cpu = now, process_cpu
        alone = not self.running
        for other in self.running.values():
            other.alone = False
        self.running[key] = _Running(now, process_cpu, calls, alone)
        # A call that proved not tiny widens the measuring: the calls that follow may
        # run long and run side by side.
        if (
            self.calls
            and not self._small()
            and self.advice is None
            and not self._native_suspected()
        ):
            self._look_wider()

    def task_finished(self, key: Any, clocks: TaskClocks) -> None:
        mine = self.running.pop(key, None)
        self.queued_calls = max(0, self.queued_calls - clocks.calls)
        if mine is None or self.advice is not None:
            return
        alone = mine.alone
        wall = max(clocks.wall - clocks.queued, 0.0)  # another program's use of a core
        cpu = min(clocks.cpu, wall)  # one thread's CPU clock reads more for tiny calls
        off_core = max(0.0, clocks.wall - clocks.cpu - clocks.queued)
        if alone and clocks.wall >= NATIVE_MEASURABLE and clocks.cpu >= NATIVE_MEASURABLE / 2:
            # (a tiny call that waited a millisecond for the GIL says nothing)
            helpers = (clocks.process_cpu - clocks.cpu) / clocks.wall
            native = helpers >= NATIVE_HELPERS  # not the caller's bits of work, or a GC
            self._alone_busy[key] = clocks.process_cpu / clocks.wall if native else 0.0
            if clocks.process_cpu > 1.25 * clocks.cpu + 1e-4:
                # Native threads computed too: count their CPU as the call's.
                cpu = clocks.process_cpu
                off_core = max(0.0, wall - cpu)
        self.calls += clocks.calls
        self.wall += wall
        self.cpu += cpu
        self.queued += clocks.queued
        if alone:
            self.off_core_alone += off_core
        else:
            self.off_core_shared += off_core
            self.wall_side_by_side += wall
            self.queued_side_by_side += clocks.queued
        if (
            self.wall >= self.measure_seconds
            or (self.calls >= TINY_CALLS and self._small())
            or self._waiting()
            or self._gil_free()
            or self._native_parallel()
        ):
            self._due = True

    def first_transfer(self, cost: PickleCost) -> None:
        """The cost of sending the first call (function and arguments) or its result."""
        self.transfer = PickleCost(
            self.transfer.size + cost.size,
            self.transfer.seconds + cost.seconds,
            self.transfer.error or cost.error,
        )

    def probe_update(self, samples: int, late: int, seconds: float, interval: float) -> None:
        """The GIL probe's samples so far, over ``seconds`` of sleeps of ``interval``."""
        self.probe_samples, self.probe_late = samples, late
        self.probe_seconds, self.probe_interval = seconds, interval
        if self.advice is None and self._gil_clearly_held():
            self._due = True
        elif (
            self.advice is None
            and not self.widened
            and not self._native_suspected()
            and self._gil_often_free()
        ):
            self.widened = True  # calls side by side may gain: measure them so

    def pool_launched(self) -> None:
        """The process pool is created and its first worker process started (or that
        took too long): the worker gets ready in the background, and the work goes on
        here meanwhile."""
        self.pool_launching = False

    def pool_ready(self) -> None:
        """A worker of the process pool is ready: the tasks move there."""
        self.pool_launching = False
        if self.committed is None and self.pool_workers:
            self._commit(Commit("processes", self.pool_workers))

    def pool_failed(self, why: str) -> None:
        """The process pool could not start: the work goes on here, one call at a time."""
        self.pool_launching = False
        if self.committed is None and self.pool_workers:
            self.pool_workers = 0
            self.reason += f"; but the process pool could not start ({why}), so the work runs here"
            self._commit(Commit("serial", 1))

    def finished_early(self) -> list[Action]:
        """No work is left and the executor shuts down: a pool still starting was for
        nothing."""
        actions = self._take_actions()
        self.pool_launching = False
        if self.committed is None and self.pool_workers:
            self.pool_workers = 0
            self.reason += (
                "; the work ended before the process pool was ready, so it all ran in this process"
            )
            actions.append(DropPool())
        if self.probing:
            self.probing = False
            actions.append(StopProbe())
        return actions

    def tick(self, now: float, process_cpu: float) -> list[Action]:
        """Decide what is due at ``now`` (the process's CPU clock reads ``process_cpu``)."""
        if self.since is not None and now - self.since >= RATE_SECONDS:
            self.process_rate = (process_cpu - self._since_cpu) / (now - self.since)
        if self.advice is None and self.running:
            first = min(self.running.values(), key=lambda r: r.started)
            elapsed = now - first.started
            if (
                not self.widened
                and not self.probing
                and not self._small()
                and elapsed >= PROBE_AFTER
            ):
                if first.alone and elapsed >= NATIVE_MEASURABLE:
                    busy = (process_cpu - first.process_cpu) / elapsed
                    if busy >= 1.0 + NATIVE_HELPERS:  # more than its own thread can use
                        key = next(k for k, r in self.running.items() if r is first)
                        self._alone_busy[key] = busy
                if not self._native_suspected():
                    self._look_wider()
            if self.calls and self._window_over(now):
                # A map's chunk may run long, its calls known only at its end: measuring
                # also ends by the clock, on the calls finished so far.
                self._due = True
                self._running_share = self._share_of_running(now)
            if elapsed >= self.max_measure_seconds:
                self._due = True
                self._partial = (elapsed, process_cpu - first.process_cpu, len(self.running))
        if self.advice is None and (self._due or self._postponed) and self._partial is None:
            if not self._window_over(now):
                # Enough is measured, but the calls measured are the short ones (wait for
                # the long one, or for the window's end, which counts it), or the cores
                # are crowded and the load does not tell yet by whom (the next ticks
                # read it, see next_tick), or one call alone kept the cores busy and the
                # next, alone too, is to confirm it.
                wait = (
                    self._long_call_in_flight(now)
                    or self._crowded_by_whom_unknown()
                    or (self._native_suspected() and not self._native_parallel())
                )
                self._due, self._postponed = not wait, wait
            elif self._postponed:
                self._due, self._postponed = True, False
        if self._due and self.advice is None:
            self._decide()
        return self._take_actions()

    def _window_over(self, now: float) -> bool:
        return self.since is not None and now - self.since >= WINDOW * self.measure_seconds

    def _share_of_running(self, now: float) -> tuple[float, int]:
        """(seconds, calls) to count for the tasks still running, as if done now: a long
        call inside one must not be missed. Each counts the calls it has had time for
        at the measured mean (one at least, all of its own at most), so that a chunk
        that has just started does not pass for many calls that took no time."""
        mean = self.wall / self.calls if self.calls else 0.0
        seconds, calls = 0.0, 0
        for r in self.running.values():
            ran = max(now - r.started, 0.0)
            seconds += ran
            done = round(ran / mean) if mean > 0 else r.calls
            calls += min(r.calls, max(1, done))
        return seconds, calls

    def _long_call_in_flight(self, now: float) -> bool:
        """A task still running has taken more than ``OUTLASTS`` times what its calls
        take at the measured mean (a call much longer than those measured)."""
        if not self.calls or self._small():
            return False  # small calls wait for the GIL or a core as long as they run
        mean = self.wall / self.calls
        return any(now - r.started > OUTLASTS * mean * r.calls for r in self.running.values())

    # -- the findings -----------------------------------------------------------------

    def _tiny(self) -> bool:
        return self.calls > 0 and self.wall / self.calls < TINY_CALL

    def _small(self) -> bool:
        return self.calls > 0 and self.wall / self.calls < SMALL_CALL

    def _gil_held(self) -> float:
        """The share of the time the GIL was held, as far as the probe can tell."""
        if not self.machine.gil:
            return 0.0
        if self.probe_samples >= MIN_PROBE_SAMPLES and not self._gil_clearly_held():
            return self.probe_late / self.probe_samples
        return 1.0  # too few samples to tell: assume Python code holds the GIL

    def _gil_bound(self) -> bool:
        return self.machine.gil and (self.cost.gil_held if self.cost else 1.0) >= 0.5

    def _call_wall(self, held: float) -> float:
        """Seconds of all calls as each would take alone: their CPU, the time they
        waited alone, and the share of their waiting next to others that was not the
        GIL's (a call waiting for the GIL held by another call waits for that call)."""
        return self.cpu + self.off_core_alone + self.off_core_shared * (1.0 - held)

    def _waiting(self) -> bool:
        """Calls, 10 ms in all, mostly spent waiting (I/O, sleep)."""
        if self.calls < 2 or self.wall < 0.01:
            return False
        return self.cpu < 0.25 * self._call_wall(self._gil_held())

    def _gil_free(self) -> bool:
        """A few calls, 10 ms in all, that clearly leave the GIL free (or there is none)."""
        if self.calls < CLEAR_CALLS or self.wall < 0.01:
            return False
        if not self.machine.gil:
            return True
        return (
            self.probe_samples >= MIN_PROBE_SAMPLES and self.probe_late <= 0.2 * self.probe_samples
        )

    def _gil_often_free(self) -> bool:
        """Half the probe's samples or more found the GIL free, over ``FREE_SAMPLES`` at
        least. (By count, not by time: on a busy machine the probe waits for a core
        between its samples, which is not the GIL's doing.)"""
        return self.probe_samples >= FREE_SAMPLES and self.probe_late <= 0.5 * self.probe_samples

    def _gil_clearly_held(self) -> bool:
        """Computing calls next to which the probe, 10 ms long, was nearly never on
        time: Python code holding the GIL, no need to wait for ten samples."""
        if not self.machine.gil or not self.calls or self.probe_seconds < CLEARLY_HELD_AFTER:
            return False
        on_time = (self.probe_samples - self.probe_late) * self.probe_interval
        # (computing: their time off the core next to each other is the GIL's)
        return on_time < 0.25 * self.probe_seconds and self.cpu >= 0.75 * self._call_wall(1.0)

    @property
    def native_busy(self) -> float:
        """Cores the calls kept busy running alone, as two tasks agree (the lower of the
        last two readings): one reading can be another thread's burst of work."""
        readings = list(self._alone_busy.values())[-2:]
        return min(readings) if len(readings) == 2 else 0.0

    def _native_suspected(self) -> bool:
        """The last task alone kept most cores busy: the next runs alone too, to confirm
        (the measuring does not widen meanwhile)."""
        readings = list(self._alone_busy.values())
        return bool(readings) and not self._small() and self._keeps_cores_busy(readings[-1])

    def _keeps_cores_busy(self, busy: float) -> bool:
        return self.machine.cpus > 1 and busy >= NATIVE_THREADS_SHARE * self.machine.cpus

    def _native_parallel(self) -> bool:
        """Two calls alone kept most cores busy (native threads), or calls side by side
        waited for a core while this process kept the cores busy
        (``_crowded_by_own_threads``)."""
        if self.machine.cpus <= 1:
            return False
        return self._keeps_cores_busy(self.native_busy) or self._crowded_by_own_threads()

    def _crowded(self) -> bool:
        """The measuring threads, side by side, waited ``CROWDED`` of their time for a
        core (not for the GIL: a thread waiting for it is not ready to run). Only for
        calls that are not small: native threads that spread over the cores run in
        calls of milliseconds, and the waits of tiny calls are mostly our own threads'."""
        return self.widened and not self._small() and self._side_by_side_waits() >= CROWDED

    def _side_by_side_waits(self) -> float:
        """Share of the time of the calls measured side by side that their threads
        waited for a core (the calls run alone before the measuring widened, which wait
        for none, do not dilute it)."""
        total = self.wall_side_by_side + self.queued_side_by_side
        return self.queued_side_by_side / total if total > 0 else 0.0

    def _crowded_by_whom_unknown(self) -> bool:
        """Crowded, and the process's CPU rate is not measured yet to tell by whom."""
        return self._crowded() and self.process_rate is None

    def _crowded_by_own_threads(self) -> bool:
        """Crowded while this process keeps the cores busy: the calls' own native
        threads (BLAS, which spreads over the cores once a call has run a few
        milliseconds, too late for the call alone to show it) fill them, and more calls
        at once only fight over them."""
        rate = self.process_rate
        return (
            self._crowded()
            and self.calls >= 2
            and rate is not None
            and rate >= FULL * self.machine.cpus
        )

    def busy_share(self) -> float:
        """Share of the measured calls' time their threads waited for a core."""
        total = self.wall + self.queued
        return self.queued / total if total > 0 else 0.0

    def measured_cost(self) -> TaskCost:
        held = self._gil_held()
        partial = self._partial
        if self.calls:
            running_wall, running_calls = self._running_share
            calls = self.calls + running_calls
            wall = (self._call_wall(held) + running_wall) / calls
            cpu = (self.cpu + running_wall * self.cpu / max(self.wall, 1e-12)) / calls
        elif partial is not None:  # the first calls were still running at the deadline
            elapsed, process_cpu, running = partial
            wall = elapsed
            cpu = process_cpu / max(running, 1)
        else:
            wall = cpu = 0.0
        wall = max(wall, 0.0)
        return TaskCost(
            wall=wall,
            cpu=min(max(cpu, 0.0), wall * self.machine.cpus),
            gil_held=min(max(held, 0.0), 1.0),
            transfer=self.transfer.seconds,
            transfer_bytes=self.transfer.size,
            picklable=self.transfer.ok,
        )

    # -- deciding ---------------------------------------------------------------------

    def _look_wider(self) -> None:
        """Calls not small: with a GIL, the probe starts, and tells whether the GIL is
        ever free (``probe_update`` widens then): two threads taking turns with a GIL
        held in C code for milliseconds (a regular expression, a JSON parse) pass it
        to each other and leave the driver and the probe waiting as long. Calls shorter
        than ``PROBE_AFTER`` hand it over as soon, and widen at once, as without a GIL."""
        if self.machine.gil and not self.probing:
            self.probing = True
            self._actions.append(StartProbe())
        short = self.calls > 0 and self.wall / self.calls < PROBE_AFTER
        if not self.machine.gil or short:
            self.widened = True

    def _chunksize(self) -> int | None:
        """How many calls a pool would be handed at once: 1 for ``submit``; None (the
        model sizes them) for a map's planned chunks; the size the caller fixed."""
        if self.planned_batches:
            return None
        if not self.batches:
            return 1
        fewest, most = self.batch_calls
        return most if fewest == most else None

    def advise(self, cost: TaskCost) -> Advice:
        """What the model recommends for the work measured so far."""
        if self.left is not None:  # a map whose input has a length: the work is known
            items = max(1, self.calls + self.queued_calls + self.left)
        else:  # assume the work goes on for ``expected_seconds`` at least
            expected = int(self.expected_seconds / cost.wall) if cost.wall > 0 else 0
            items = max(1, self.calls + self.queued_calls, expected)
        chunksize = self._chunksize()
        machine = self.machine
        if self._native_parallel():
            # Each call keeps the cores busy already: no pool runs two faster. (Its own
            # thread's CPU, side by side with others, misses what its native threads did.)
            machine = replace(machine, cpus=1)
            cost = replace(cost, cpu=max(cost.cpu, cost.wall))
        advice = recommend(cost, machine, items, workers=self.workers, chunksize=chunksize)
        if (
            advice.backend == "threads"
            and advice.workers != self.measuring_threads
            and self.workers is None
        ):
            measuring = recommend(
                cost,
                machine,
                items,
                workers=self.measuring_threads,
                chunksize=chunksize,
                backends=("threads",),
            )
            if measuring.speedup * KEEP_MEASURING_THREADS >= advice.speedup:
                advice = replace(measuring, options=advice.options)
        return self._fair_share(advice, cost, items)

    def others_cores(self) -> float:
        """Cores other programs held while the calls were measured: the ones this
        process did not get while its measuring threads waited for one (0.0 when they
        did not wait: the cores then idled, or the GIL kept the threads back)."""
        rate = self.process_rate
        if rate is None or not self._crowded():
            return 0.0
        return max(0.0, self.machine.cpus - rate)

    def _threads_of_others(self, others: float) -> float:
        """How many threads of other programs ``others`` cores mean: each of our
        measuring threads got ``process_rate / threads`` of a core, so did theirs."""
        rate = self.process_rate or 0.0
        mine = min(self.measuring_threads, self.machine.cpus)
        share = rate / mine if mine else 0.0
        return others / share if share > 0 else others

    def _fair_share(self, advice: Advice, cost: TaskCost, items: int) -> Advice:
        """More threads than cores for computing calls that leave the GIL free, when
        other programs hold cores (see ``FAIR_SHARE``)."""
        others = self.others_cores()
        computing = cost.wall > 0 and cost.cpu >= 0.5 * cost.wall
        gil_free = not self.machine.gil or cost.gil_held < 0.5
        if (
            advice.backend != "threads"
            or self.workers is not None
            or others < BUSY_CORES
            or not (computing and gil_free)
        ):
            return advice
        wanted = math.ceil(FAIR_SHARE * self._threads_of_others(others) / (1.0 - FAIR_SHARE))
        # at most the standard library's default: beyond it, memory-bound calls (NumPy)
        # fight over the caches more than they gain cores
        workers = min(max(advice.workers, wanted), self.machine.cpus + 4, items)
        if workers <= advice.workers:
            return advice
        reason = (
            f"threads with {workers} workers: other programs held about {others:.1f} of "
            f"the {self.machine.cpus} cores, and {workers} threads keep a fair share of the "
            "machine"
        )
        kept = (
            advice.reasons[:-1]
            if advice.reasons[-1:] and advice.reasons[-1].startswith("threads with")
            else advice.reasons
        )  # the prediction for a quiet machine
        return replace(advice, workers=workers, reasons=(*kept, reason))

    def _decide(self) -> None:
        self._due = False
        cost = self.cost = self.measured_cost()
        advice = self.advice = self.advise(cost)
        if self.calls:
            measured = f"measured {self.calls} call{'s' if self.calls != 1 else ''}"
        else:
            measured = f"the first call was still running after {_seconds(cost.wall)}"
        findings = [measured]
        if self._keeps_cores_busy(self.native_busy):
            findings.append(
                f"calls alone kept {self.native_busy:.1f} of {self.machine.cpus} cores busy "
                "(native threads, e.g. BLAS)"
            )
        elif self._native_parallel():
            findings.append(
                f"calls side by side waited {self._side_by_side_waits():.0%} of their time "
                "for a core "
                f"while this process kept {self.process_rate or 0.0:.1f} of "
                f"{self.machine.cpus} cores busy: their own native threads (e.g. BLAS) fill them"
            )
        self.reason = f"{'; '.join(findings)}: {advice.reason}"
        if self.probing:
            self.probing = False
            self._actions.append(StopProbe())
        if advice.backend == "processes":
            self.pool_workers = advice.workers
            self.reason += "; the pool starts in the background while the work runs here"
            here = 1 if self._gil_bound() else 0  # the calls running here meanwhile
            starting = max(1, min(advice.workers, self.machine.cpus - here))
            # Creating the pool and starting a worker process take many turns with the
            # GIL (each file read or pipe written gives it up): next to calls that hold
            # it, each turn would wait for one call to end.
            self.pool_launching = bool(here)
            self._actions.append(StartPool(advice.workers, starting))
        elif advice.backend == "threads":
            self._commit(
                Commit("threads", advice.workers, reuse=advice.workers == self.measuring_threads)
            )
        else:
            self._commit(Commit("serial", 1))

    def _commit(self, commit: Commit) -> None:
        self.committed = commit
        self._actions.append(commit)

    def _take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions
