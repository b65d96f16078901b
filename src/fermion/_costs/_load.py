"""How much of this process's cores other programs took while a block ran.

A speedup measured while another program spins on the same cores is lower than the
machine can give, and silently so: two workers on a 2-core machine that another
program half fills run at about half speed. :func:`machine_load` measures it::

    with fermion.machine_load() as meter:
        run_the_benchmark()
    if meter.result.busy:
        print(meter.result.describe())  # "another program used 1.7 of 2 cores ..."

Method: the CPU time every program spent on the cores this process may run on (the
kernel's per-core counters: ``/proc/stat`` on Linux, psutil elsewhere), minus the
CPU time of this process and all its descendants (worker processes included, alive or
already reaped), over the block's wall time. What is left is what other programs took.

:class:`MachineLoad` is the pure part: three numbers in, a verdict and a sentence out,
so that it can be tested (and fed) without a busy machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

__all__ = [
    "CpuSample",
    "LoadMeter",
    "MachineLoad",
    "cpu_sample",
    "machine_load",
    "own_cpu_sample",
]

#: Other programs taking less than this many cores count as a quiet machine (a desktop's
#: background, a terminal) ...
QUIET_CORES = 0.3
#: ... or less than this share of the cores, on a machine with many.
QUIET_SHARE = 0.1


@dataclass(frozen=True)
class CpuSample:
    """Cumulative counters at one instant: wall clock (seconds), CPU seconds every
    program spent on ``cores`` (busy, not idle), and CPU seconds of this process tree."""

    wall: float
    cores: int
    busy: float
    own: float


@dataclass(frozen=True)
class MachineLoad:
    """What ran on this process's cores over ``wall`` seconds: ``busy`` CPU seconds in
    all, ``own`` of them by this process and its descendants.

    ``others`` is the number of cores other programs kept busy on average; ``busy``
    says whether that is enough to lower the speedups measured meanwhile.
    """

    cores: int
    wall: float
    busy_cpu: float
    own_cpu: float
    quiet_cores: float = field(default=QUIET_CORES, repr=False)
    quiet_share: float = field(default=QUIET_SHARE, repr=False)

    def __post_init__(self) -> None:
        if self.cores < 1:
            raise ValueError(f"MachineLoad needs at least one core, got cores={self.cores!r}")
        if not self.wall >= 0:
            raise ValueError(f"MachineLoad needs a wall time >= 0 seconds, got {self.wall!r}")

    @classmethod
    def between(cls, first: CpuSample, last: CpuSample) -> MachineLoad:
        """The load over the interval from ``first`` to ``last``."""
        return cls(
            cores=last.cores,
            wall=max(0.0, last.wall - first.wall),
            busy_cpu=max(0.0, last.busy - first.busy),
            own_cpu=max(0.0, last.own - first.own),
        )

    @property
    def others(self) -> float:
        """Cores other programs kept busy, on average over the interval (0 to ``cores``)."""
        if self.wall <= 0:
            return 0.0
        return min(float(self.cores), max(0.0, self.busy_cpu - self.own_cpu) / self.wall)

    @property
    def free(self) -> float:
        """Cores left for this program, on average."""
        return self.cores - self.others

    @property
    def busy(self) -> bool:
        """Whether other programs took enough of the cores to lower measured speedups."""
        return self.others >= max(self.quiet_cores, self.quiet_share * self.cores)

    def describe(self) -> str:
        """One sentence for a reader: how much other programs took, and what it means."""
        used = f"{self.others:.1f} of {self.cores} core{'s' if self.cores != 1 else ''}"
        if not self.busy:
            return f"quiet machine: other programs used {used} meanwhile"
        who = "another program" if self.others < 1.5 else "other programs"
        return (
            f"{who} used {used} meanwhile: the timings are slower and the speedups lower "
            "than this machine can give"
        )

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "cores": self.cores,
            "wall": self.wall,
            "busy_cpu": self.busy_cpu,
            "own_cpu": self.own_cpu,
            "others": self.others,
            "busy": self.busy,
        }


def _psutil() -> Any:
    """psutil, imported on first use: it costs ~10 ms, which an ``auto`` executor in a
    short script pays only if it measures the load."""
    import psutil

    return psutil


def _my_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: every core
        return list(range(_psutil().cpu_count() or 1))


def _busy_seconds(times: object) -> float:
    # iowait and idle are not busy; guest time is already inside user time on Linux.
    return sum(
        float(getattr(times, name, 0.0))
        for name in ("user", "nice", "system", "irq", "softirq", "steal")
    )


def _tree_seconds(process: psutil.Process) -> float:
    """CPU seconds of ``process`` and its descendants, alive or reaped."""
    psutil = _psutil()
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            t = member.cpu_times()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue  # gone between listing and reading: counted by its parent once reaped
        total += t.user + t.system + t.children_user + t.children_system
    return total


def cpu_sample(process: psutil.Process | None = None) -> CpuSample:
    """Read the counters now: this process's cores, and this process tree."""
    # The clock and the machine's counters are read together; the walk over this
    # process tree comes after, as it can take long on a loaded machine (every process's
    # parent is read), and a slow walk must not stretch the interval the counters cover.
    wall, cores, busy = _cores_busy()
    own = _tree_seconds(process or _psutil().Process())
    return CpuSample(wall, cores, busy, own)


def _cores_busy() -> tuple[float, int, float]:
    """(monotonic clock, cores this process may use, CPU seconds every program spent
    on them), read together."""
    cores = _my_cores()
    wall = time.monotonic()
    per_core = _proc_stat_busy()
    if per_core is None:
        per_core = [_busy_seconds(times) for times in _psutil().cpu_times(percpu=True)]
    return wall, len(cores), sum(per_core[i] for i in cores if i < len(per_core))


#: The columns of a ``cpuN`` line of ``/proc/stat`` that are busy time (see _busy_seconds).
_PROC_STAT_BUSY = (0, 1, 2, 5, 6, 7)  # user nice system [idle iowait] irq softirq steal


def _proc_stat_busy() -> list[float] | None:
    """Busy CPU seconds of each core, read from Linux's ``/proc/stat`` (None elsewhere).

    The same counters psutil reads, read here because importing psutil costs 7-10 ms,
    which an ``auto`` executor in a short script would pay for its first sample.
    """
    try:
        with open("/proc/stat", "rb") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return None
    tick = _clock_tick()
    busy: dict[int, float] = {}
    for line in lines:
        if not line.startswith(b"cpu") or line[3:4] == b" ":
            continue  # the machine's total, and the lines that are not cores
        fields = line.split()
        try:
            core = int(fields[0][3:])
            busy[core] = (
                sum(int(fields[1 + i]) for i in _PROC_STAT_BUSY if 1 + i < len(fields)) / tick
            )
        except ValueError:
            return None
    if not busy:
        return None
    return [busy.get(core, 0.0) for core in range(max(busy) + 1)]


def _clock_tick() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


def own_cpu_sample(worker_pids: Iterable[int] = ()) -> CpuSample:
    """Like :func:`cpu_sample`, but this process tree is this process (and its reaped
    children) plus the ``worker_pids`` it knows: no walk over every process of the
    machine, which costs milliseconds (the ``auto`` backend samples while work runs)."""
    wall, cores, busy = _cores_busy()
    mine = os.times()
    own = mine.user + mine.system + mine.children_user + mine.children_system
    pids = list(worker_pids)
    if pids:  # psutil only then: see _proc_stat_busy
        psutil = _psutil()
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            own += t.user + t.system
    return CpuSample(wall, cores, busy, own)


class LoadMeter:
    """Measures the load between :meth:`start` and :meth:`stop`.

    ``sampler`` reads the counters (:func:`cpu_sample` by default); a test or a caller
    that knows better passes its own.
    """

    def __init__(self, sampler: Callable[[], CpuSample] = cpu_sample) -> None:
        self._sampler = sampler
        self._first: CpuSample | None = None
        self._load: MachineLoad | None = None

    def start(self) -> None:
        """Read the counters: the interval begins now."""
        self._first = self._sampler()
        self._load = None

    def elapsed(self) -> float:
        """Seconds since :meth:`start` (0.0 before it)."""
        return time.monotonic() - self._first.wall if self._first is not None else 0.0

    def stop(self) -> MachineLoad:
        """Read the counters again and return the load since :meth:`start`."""
        if self._first is None:
            raise RuntimeError("LoadMeter.stop() was called before start(); call start() first")
        self._load = MachineLoad.between(self._first, self._sampler())
        return self._load

    @property
    def result(self) -> MachineLoad:
        """The load of the last finished interval."""
        if self._load is None:
            raise RuntimeError(
                "the machine load is known only after the interval ends (after the "
                "'with fermion.machine_load()' block, or LoadMeter.stop()); read it then"
            )
        return self._load


@contextmanager
def machine_load() -> Iterator[LoadMeter]:
    """Measure what other programs take of this process's cores while the block runs.

    After the block, ``meter.result`` is the :class:`MachineLoad` (``others``, ``busy``,
    ``describe()``). Costs two reads of the kernel's counters (about a millisecond).
    """
    meter = LoadMeter()
    meter.start()
    try:
        yield meter
    finally:
        meter.stop()
