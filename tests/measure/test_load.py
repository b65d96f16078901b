"""fermion.machine_load: what other programs take of this process's cores.

The verdict is a pure object (MachineLoad) tested with fixed numbers, so the quiet
case does not depend on the shared machine; the busy case is measured for real under
two CPU hogs, in a child process so that the hogs are not its own descendants.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

import fermion
from fermion.measure import CpuSample, LoadMeter, MachineLoad


def test_a_quiet_machine_is_not_busy() -> None:
    # 10 s on 2 cores: 12 CPU seconds in all, 11.5 of them ours: others took 0.05 core.
    load = MachineLoad(cores=2, wall=10.0, busy_cpu=12.0, own_cpu=11.5)
    assert load.others == pytest.approx(0.05)
    assert not load.busy
    assert load.describe() == "quiet machine: other programs used 0.1 of 2 cores meanwhile"


def test_a_busy_machine_says_how_much_and_what_it_means() -> None:
    load = MachineLoad(cores=2, wall=10.0, busy_cpu=20.0, own_cpu=3.0)
    assert load.others == pytest.approx(1.7)
    assert load.busy
    assert load.free == pytest.approx(0.3)
    assert load.describe() == (
        "other programs used 1.7 of 2 cores meanwhile: the timings are slower and the "
        "speedups lower than this machine can give"
    )
    assert (
        MachineLoad(cores=2, wall=1.0, busy_cpu=2.0, own_cpu=1.0)
        .describe()
        .startswith("another program used 1.0 of 2 cores")
    )


def test_others_never_exceed_the_cores_nor_go_negative() -> None:
    assert MachineLoad(cores=2, wall=1.0, busy_cpu=5.0, own_cpu=0.0).others == 2.0
    assert MachineLoad(cores=2, wall=1.0, busy_cpu=1.0, own_cpu=1.3).others == 0.0
    assert MachineLoad(cores=2, wall=0.0, busy_cpu=1.0, own_cpu=0.0).others == 0.0


def test_a_many_core_machine_needs_a_larger_share_to_be_busy() -> None:
    assert not MachineLoad(cores=64, wall=1.0, busy_cpu=5.0, own_cpu=0.0).busy
    assert MachineLoad(cores=64, wall=1.0, busy_cpu=7.0, own_cpu=0.0).busy


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match=r"MachineLoad needs at least one core, got cores=0"):
        MachineLoad(cores=0, wall=1.0, busy_cpu=0.0, own_cpu=0.0)
    with pytest.raises(ValueError, match=r"MachineLoad needs a wall time >= 0 seconds, got -1"):
        MachineLoad(cores=1, wall=-1, busy_cpu=0.0, own_cpu=0.0)


def test_the_meter_reads_its_sampler_at_start_and_stop() -> None:
    samples = iter([CpuSample(100.0, 2, 50.0, 5.0), CpuSample(104.0, 2, 57.0, 8.0)])
    meter = LoadMeter(lambda: next(samples))
    with pytest.raises(RuntimeError, match=r"the machine load is known only after the interval"):
        _ = meter.result
    meter.start()
    load = meter.stop()
    assert load == MachineLoad(cores=2, wall=4.0, busy_cpu=7.0, own_cpu=3.0)
    assert load.others == pytest.approx(1.0)
    assert meter.result is load


def test_the_meter_says_how_long_it_has_run_without_reading_the_counters() -> None:
    # (auto asks before the choice: a measuring shorter than the counters' ticks is
    # not worth two reads that each give up the GIL)
    reads = []
    meter = LoadMeter(lambda: reads.append(1) or CpuSample(time.monotonic(), 2, 0.0, 0.0))
    assert meter.elapsed() == 0.0
    meter.start()
    assert 0.0 <= meter.elapsed() < 60.0 and reads == [1]


def test_stop_before_start_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"LoadMeter.stop\(\) was called before start\(\)"):
        LoadMeter().stop()


def test_a_real_measurement_counts_this_process_as_its_own() -> None:
    with fermion.machine_load() as meter:
        start = time.process_time()
        while time.process_time() - start < 0.3:  # 0.3 s of this process's own CPU
            sum(range(10_000))
    load = meter.result
    assert load.own_cpu > 0.2  # the counters tick in 10 ms steps
    assert load.busy_cpu >= load.own_cpu * 0.9  # what we did is part of what all did
    assert load.wall > 0


_MEASURE = """
import time
import fermion
with fermion.machine_load() as meter:
    time.sleep(1.5)
print(meter.result.others, meter.result.busy)
"""


@pytest.mark.slow
def test_two_cpu_hogs_make_the_machine_busy(cpu_hogs: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE], capture_output=True, text=True, timeout=60, check=True
    )
    others, busy = done.stdout.split()
    assert busy == "True", done.stdout
    assert float(others) >= 0.8  # two hogs on the measured cores: at least most of one


def test_the_clock_is_read_with_the_counters_not_after_the_slow_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Walking the process tree can take seconds on a loaded machine; the interval the
    # counters cover must not include it (a 13 s walk once made a busy section quiet).
    from fermion._costs import _load

    walked = threading.Event()

    def slow_walk(process: object) -> float:
        walked.wait(0.3)  # nothing sets it: a 0.3 s walk
        return 0.0

    monkeypatch.setattr(_load, "_tree_seconds", slow_walk)
    before = time.monotonic()
    sample = _load.cpu_sample()
    assert time.monotonic() - before >= 0.3
    assert sample.wall - before < 0.2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_the_cores_counters_read_from_proc_stat_are_psutils() -> None:
    import psutil

    from fermion._costs import _load

    ours = _load._proc_stat_busy()
    theirs = [_load._busy_seconds(times) for times in psutil.cpu_times(percpu=True)]
    assert ours is not None and len(ours) == len(theirs)
    # read a moment apart: the counters only grow, by little
    for mine, psutils in zip(ours, theirs, strict=True):
        assert mine <= psutils + 0.05 and psutils - mine < 1.0


def test_an_auto_executor_with_short_work_does_not_import_psutil() -> None:
    # psutil costs 7-10 ms to import, more than the whole of a short job.
    code = (
        "import sys\n"
        "from fermion import Executor\n"
        "with Executor('auto') as ex:\n"
        "    assert list(ex.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]\n"
        "print('psutil' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ("True" if not sys.platform.startswith("linux") else "False")
