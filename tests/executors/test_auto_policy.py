"""The decisions of ``auto``, driven with numbers: no threads, no clocks, no pools."""

from __future__ import annotations

import pytest

from fermion._costs._cost import PickleCost
from fermion._costs._model import Machine
from fermion.executors._auto_policy import (
    PROBE_AFTER,
    AutoPolicy,
    Commit,
    DropPool,
    StartPool,
    StartProbe,
    StopProbe,
    TaskClocks,
)

TWO_CORES = Machine(cpus=2, gil=True, process_startup=0.05)
NO_GIL = Machine(cpus=2, gil=False, process_startup=0.05)


def _policy(machine: Machine = TWO_CORES, **options: float) -> AutoPolicy:
    options.setdefault("expected_seconds", 5.0)
    return AutoPolicy(machine, measuring_threads=machine.cpus, **options)  # type: ignore[arg-type]


def _run(
    policy: AutoPolicy,
    key: int,
    start: float,
    *,
    wall: float,
    cpu: float,
    process_cpu: float | None = None,
    queued: float = 0.0,
    calls: int = 1,
) -> None:
    policy.task_queued(calls, batch=False)
    policy.task_started(key, start, process_cpu=start)
    policy.task_finished(
        key,
        TaskClocks(calls, wall, cpu, process_cpu if process_cpu is not None else cpu, queued),
    )


def test_tiny_calls_run_one_at_a_time_and_settle_on_serial() -> None:
    policy = _policy()
    assert policy.local_slots == 1
    for key in range(20):
        _run(policy, key, key * 1e-5, wall=2e-6, cpu=2e-6)
    assert policy.local_slots == 1 and not policy.widened  # tiny: never a second thread
    actions = policy.tick(1.0, 0.0)
    assert actions == [Commit("serial", 1)]
    assert "less than" in policy.reason
    assert policy.local_slots == 1 and not policy.handing_over  # serial: here, one at a time


def test_a_first_call_that_runs_long_widens_and_starts_the_probe() -> None:
    policy = _policy()
    policy.task_queued(1, batch=False)
    policy.task_started("a", 0.0, process_cpu=0.0)
    assert policy.next_tick() == pytest.approx(PROBE_AFTER)
    assert policy.tick(PROBE_AFTER / 2, 0.0) == []
    actions = policy.tick(PROBE_AFTER * 2, PROBE_AFTER * 2)  # one core busy: Python code
    assert actions == [StartProbe()]
    assert policy.next_tick() == pytest.approx(policy.max_measure_seconds)  # no busy ticks
    # With a GIL, a second thread joins only once the probe finds the GIL free
    assert policy.local_slots == 1
    policy.probe_update(samples=10, late=0, seconds=0.006, interval=0.0005)
    assert policy.widened and policy.local_slots == 2


def test_calls_under_a_millisecond_are_measured_side_by_side_at_once() -> None:
    # (they hand the GIL over as soon as they return: no need to wait for the probe)
    policy = _policy()
    _run(policy, 0, 0.0, wall=0.0005, cpu=0.0005)
    policy.task_queued(1, batch=False)
    policy.task_started(1, 0.0005, process_cpu=0.0005)
    assert policy.widened and policy.local_slots == 2
    assert policy.tick(0.0006, 0.0006) == [StartProbe()]


def test_calls_that_hold_the_gil_are_measured_on_one_thread() -> None:
    # (a C call holding the GIL for milliseconds: two threads would pass it to each
    # other, and the driver and the probe would wait tens of milliseconds for a turn)
    policy = _policy()
    _run(policy, 0, 0.0, wall=0.002, cpu=0.002)
    policy.task_queued(1, batch=False)
    policy.task_started(1, 0.002, process_cpu=0.002)
    assert policy.tick(0.003, 0.003) == [StartProbe()]
    policy.probe_update(samples=6, late=6, seconds=0.006, interval=0.0005)
    assert not policy.widened and policy.local_slots == 1
    policy.probe_update(samples=12, late=12, seconds=0.012, interval=0.0005)
    assert not policy.widened
    policy.task_finished(1, TaskClocks(1, 0.002, 0.002, 0.002))
    policy.first_transfer(PickleCost(100, 1e-5))
    actions = policy.tick(0.013, 0.013)  # the GIL clearly held: chosen at once
    assert StopProbe() in actions and any(isinstance(a, StartPool | Commit) for a in actions)
    assert "holds the GIL" in policy.reason


def test_a_first_call_that_keeps_every_core_busy_is_not_run_twice_at_once() -> None:
    # BLAS on both cores: the process's CPU clock runs twice as fast as the wall clock.
    policy = _policy()
    policy.task_queued(1, batch=False)
    policy.task_started("a", 0.0, process_cpu=0.0)
    assert policy.tick(0.002, 0.004) == []
    assert not policy.widened and policy.local_slots == 1
    policy.task_finished("a", TaskClocks(1, 0.06, 0.01, 0.12))
    # one reading could be another thread's burst of work: the next call runs alone too
    assert [a for a in policy.tick(0.061, 0.12) if isinstance(a, Commit | StartPool)] == []
    policy.task_queued(1, batch=False)
    policy.task_started("b", 0.062, process_cpu=0.12)
    assert not policy.widened and policy.local_slots == 1
    policy.task_finished("b", TaskClocks(1, 0.03, 0.005, 0.06))
    actions = policy.tick(0.093, 0.18)
    assert actions == [Commit("serial", 1)], policy.reason
    assert "native threads" in policy.reason
    assert policy.measured_cost().cpu == pytest.approx(0.09)  # the BLAS threads counted


def test_one_call_alone_that_seemed_to_keep_the_cores_busy_is_not_enough() -> None:
    # Another thread's burst of work during the first call alone: the second call,
    # alone too, reads one core; the measuring then widens as usual.
    policy = _policy()
    policy.task_queued(1, batch=False)
    policy.task_started("a", 0.0, process_cpu=0.0)
    policy.task_finished("a", TaskClocks(1, 0.006, 0.006, 0.013))
    policy.task_queued(1, batch=False)
    policy.task_started("b", 0.006, process_cpu=0.013)
    assert not policy.widened
    policy.task_finished("b", TaskClocks(1, 0.006, 0.006, 0.006))
    policy.task_queued(1, batch=False)
    policy.task_started("c", 0.012, process_cpu=0.019)
    assert policy.probing and policy.native_busy < 1.2


def test_python_code_holding_the_gil_starts_a_pool_and_works_on_until_it_is_ready() -> None:
    policy = _policy()
    _run(policy, 0, 0.0, wall=0.01, cpu=0.01)
    policy.task_queued(1, batch=False)
    policy.task_started(1, 0.01, process_cpu=0.01)  # proved not tiny: the probe starts
    assert policy.probing
    policy.probe_update(samples=3, late=3, seconds=0.02, interval=0.0005)  # clearly held
    assert not policy.widened
    policy.task_finished(1, TaskClocks(1, 0.01, 0.01, 0.01))
    policy.first_transfer(PickleCost(100, 1e-5))
    actions = policy.tick(0.03, 0.02)
    assert actions == [StartProbe(), StopProbe(), StartPool(2, starting=1)]
    assert "holds the GIL" in policy.reason and "in the background" in policy.reason
    assert policy.local_slots == 0  # the pool's creation has the GIL to itself
    policy.pool_launched()
    assert policy.local_slots == 1  # one call at a time here: the workers start up meanwhile
    assert not policy.handing_over
    # each call here is followed by a pause for the pool's thread: 5% of it, 0.5 ms at most
    assert policy.pause_after_call(0.002) == pytest.approx(0.0001)
    assert policy.pause_after_call(0.1) == pytest.approx(0.0005)
    policy.pool_ready()
    assert policy.tick(0.3, 0.3) == [Commit("processes", 2)]
    assert policy.handing_over and policy.local_slots == 0


def test_measuring_calls_of_a_millisecond_or_more_give_up_the_gil_after_each() -> None:
    policy = _policy()
    assert policy.pause_after_call(0.0005) is None  # the switch interval serves short ones
    assert policy.pause_after_call(0.002) is not None  # C code may hold it for as long
    assert _policy(NO_GIL).pause_after_call(0.002) is None


def test_work_that_ends_before_the_pool_is_ready_drops_it_and_says_so() -> None:
    policy = _policy()
    policy.pool_workers = 2  # as after a StartPool
    policy.advice = object()  # type: ignore[assignment]
    assert policy.finished_early() == [DropPool()]
    assert "ended before the process pool was ready" in policy.reason


def test_a_pool_that_cannot_start_leaves_the_work_here() -> None:
    policy = _policy()
    policy.pool_workers = 2
    policy.pool_failed("OSError: no more processes")
    assert policy.tick(1.0, 1.0) == [Commit("serial", 1)]
    assert "could not start (OSError: no more processes)" in policy.reason


def test_waiting_calls_go_to_many_threads() -> None:
    policy = _policy()
    for key in range(4):
        _run(policy, key, key * 0.02, wall=0.02, cpu=0.0002)
    policy.probe_update(samples=100, late=1, seconds=0.06, interval=0.0005)
    *_, commit = policy.tick(0.1, 0.001)
    assert isinstance(commit, Commit) and commit.backend == "threads" and commit.workers > 2
    assert "waits" in policy.reason


def test_without_a_gil_computing_calls_go_on_on_the_measuring_threads() -> None:
    policy = _policy(NO_GIL)
    for key in range(4):
        _run(policy, key, key * 0.01, wall=0.01, cpu=0.01)
    assert policy.tick(0.05, 0.04) == [Commit("threads", 2, reuse=True)]


def test_time_spent_waiting_for_a_core_is_not_the_calls_and_is_reported() -> None:
    policy = _policy()
    for key in range(10):
        _run(policy, key, key * 0.02, wall=0.02, cpu=0.01, queued=0.01)
    assert policy.measured_cost().wall == pytest.approx(0.01)
    assert policy.busy_share() == pytest.approx(0.5)


def test_a_deadline_decides_on_a_first_call_that_never_returns() -> None:
    policy = _policy(max_measure_seconds=0.25)
    policy.task_queued(1, batch=False)
    policy.task_started("a", 0.0, process_cpu=0.0)
    policy.tick(0.002, 0.0)  # widened; sleeping, no CPU
    policy.probe_update(samples=400, late=0, seconds=0.24, interval=0.0005)  # GIL free
    assert policy.next_tick() == pytest.approx(0.25)
    actions = policy.tick(0.25, 0.0)
    commit = actions[-1]
    assert isinstance(commit, Commit) and commit.backend == "threads" and commit.workers > 2
    assert policy.reason.startswith("the first call was still running after 250 ms")


def test_a_maps_planned_chunks_leave_the_chunk_size_to_the_model() -> None:
    policy = _policy(NO_GIL)
    for key in range(20):
        policy.task_queued(1000, batch=True, planned=True)
        policy.task_started(key, key * 1e-4, process_cpu=0.0)
        policy.task_finished(key, TaskClocks(1000, 5e-4, 5e-4, 5e-4))
    assert policy.tick(1.0, 1.0) == [Commit("threads", 2, reuse=True)]
    fixed = _policy(NO_GIL)
    for key in range(20):
        fixed.task_queued(1, batch=True)  # chunksize=1: each call handed over alone
        fixed.task_started(key, key * 1e-4, process_cpu=0.0)
        fixed.task_finished(key, TaskClocks(1, 5e-8, 5e-8, 5e-8))
    assert fixed.tick(1.0, 1.0) == [Commit("serial", 1)]


def test_a_map_of_known_length_is_judged_by_the_work_left_not_by_a_guess() -> None:
    # 25 calls of 20 ms of Python: 0.5 s in all, too little to pay for a pool that takes
    # 0.3 s to start, whatever expected_seconds assumes.
    machine = Machine(cpus=2, gil=True, process_startup=0.3)
    short = _policy(machine)
    long = _policy(machine)
    for policy, left in ((short, 20), (long, 2000)):
        for key in range(5):
            policy.task_queued(1, batch=True, planned=True, left=left - key)
            policy.task_started(key, key * 0.02, process_cpu=0.0)
            policy.probe_update(samples=2, late=2, seconds=0.05, interval=0.0005)
            policy.task_finished(key, TaskClocks(1, 0.02, 0.02, 0.02))
    assert short.tick(0.2, 0.1)[-1] == Commit("serial", 1)
    assert isinstance(long.tick(0.2, 0.1)[-1], StartPool)


def test_a_busy_machine_is_named_by_the_share_of_time_spent_waiting_for_a_core() -> None:
    policy = _policy()
    _run(policy, 0, 0.0, wall=0.01, cpu=0.006, queued=0.004)
    assert policy.busy_share() == pytest.approx(0.4)


def test_the_choice_waits_for_a_call_far_longer_than_those_measured() -> None:
    # One call in ten takes 40 ms, the others 0.5 ms (the "mixed" workload): the first
    # call is a long one, still running when the short ones beside it settle the
    # question. Judged by the short ones alone, 300 calls look like 0.15 s of work and
    # stay here; the choice waits for the long call and counts it.
    machine = Machine(cpus=2, gil=True, process_startup=0.3)
    policy = _policy(machine)
    policy.task_queued(1, batch=True, planned=True, left=299)
    policy.task_started("long", 0.0, process_cpu=0.0)
    policy.tick(0.002, 0.002)  # the first call runs past PROBE_AFTER: the probe starts
    assert policy.probing
    for key in range(8):
        policy.task_queued(1, batch=True, planned=True, left=298 - key)
        policy.task_started(key, 0.002 + key * 5e-4, process_cpu=0.0)
        policy.task_finished(key, TaskClocks(1, 5e-4, 5e-4, 5e-4))
    policy.probe_update(samples=4, late=4, seconds=0.02, interval=0.0005)  # clearly held
    assert policy.wants_tick
    assert not any(isinstance(a, Commit | StartPool) for a in policy.tick(0.02, 0.03))
    assert not policy.decided and not policy.wants_tick  # no busy loop meanwhile
    assert policy.next_tick() is not None
    policy.task_finished("long", TaskClocks(1, 0.04, 0.04, 0.04))
    policy.probe_update(samples=5, late=5, seconds=0.04, interval=0.0005)  # each tick reads it
    actions = policy.tick(0.041, 0.05)
    assert isinstance(actions[-1], StartPool), policy.reason
    assert "measured 9 calls" in policy.reason


def test_a_chunk_still_running_at_the_window_counts_the_calls_it_had_time_for() -> None:
    # A chunk of 50 calls that started 1 ms before the window closed has done about 2
    # of them at the measured 0.5 ms, not 50 in no time.
    policy = _policy(Machine(cpus=2, gil=True, process_startup=0.3))
    for key in range(4):
        policy.task_queued(1, batch=True, planned=True)
        policy.task_started(key, key * 5e-4, process_cpu=0.0)
        policy.task_finished(key, TaskClocks(1, 5e-4, 5e-4, 5e-4))
    policy.task_queued(50, batch=True, planned=True)
    policy.task_started("chunk", 0.099, process_cpu=0.0, calls=50)
    assert policy._share_of_running(0.1) == (pytest.approx(0.001), 2)


def test_computing_threads_outnumber_the_cores_when_other_programs_hold_some() -> None:
    # NumPy calls (no GIL held) measured on 2 threads that waited 40% of their time for
    # a core while this process kept only 1.2 of the 2 cores busy: other programs held
    # the other 0.8 (one thread of theirs, as ours got 0.6 of a core each), so 2 threads
    # get 60% of the machine, and 6 (the most made) 86%.
    busy, quiet = _policy(), _policy()
    for policy, queued in ((busy, 0.004), (quiet, 0.0)):
        _run(policy, 0, 0.0, wall=0.01, cpu=0.01 - queued, queued=queued)
        policy.task_queued(1, batch=False)
        policy.task_started(1, 0.01, process_cpu=0.01)
        policy.probe_update(samples=20, late=0, seconds=0.02, interval=0.0005)  # GIL free
        assert policy.widened
        for key in range(2, 6):
            _run(policy, key, 0.01 * key, wall=0.01, cpu=0.01 - queued, queued=queued)
    commit = [a for a in busy.tick(0.1, 0.12) if isinstance(a, Commit)]
    assert busy.others_cores() == pytest.approx(0.8)
    assert commit == [Commit("threads", 6)], busy.reason
    assert "other programs held about 0.8 of the 2 cores, and 6 threads" in busy.reason
    commit = [a for a in quiet.tick(0.1, 0.12) if isinstance(a, Commit)]  # cores idle
    assert quiet.others_cores() == 0.0
    assert commit == [Commit("threads", 2, reuse=True)], quiet.reason


def test_python_code_holding_the_gil_gets_no_more_threads_on_a_busy_machine() -> None:
    policy = _policy(Machine(cpus=2, gil=True, process_startup=5.0))  # no pool pays
    for key in range(6):
        _run(policy, key, 0.01 * key, wall=0.01, cpu=0.006, queued=0.004)
    policy.probe_update(samples=3, late=3, seconds=0.02, interval=0.0005)  # held
    actions = policy.tick(0.1, 0.06)
    assert not any(isinstance(a, Commit) and a.workers > 2 for a in actions), policy.reason


def test_calls_crowded_out_by_their_own_native_threads_run_one_at_a_time() -> None:
    # BLAS calls measured side by side: each thread waited 40% of its time for a core
    # while this process kept both cores busy: the calls' own BLAS threads fill them.
    # When the process got only 1.2 of the cores instead, other programs held the rest.
    own, others = _policy(), _policy()
    for policy in (own, others):
        _run(policy, 0, 0.0, wall=0.02, cpu=0.012, queued=0.008)
        policy.task_queued(1, batch=False)
        policy.task_started(1, 0.02, process_cpu=0.02)
        policy.probe_update(samples=20, late=0, seconds=0.02, interval=0.0005)  # GIL free
        for key in range(2, 6):
            _run(policy, key, 0.02 * key, wall=0.02, cpu=0.012, queued=0.008)
    assert own.tick(0.2, 0.39)[-1] == Commit("serial", 1), own.reason
    assert "while this process kept 1.9 of 2 cores busy" in own.reason
    last = others.tick(0.2, 0.24)[-1]
    assert isinstance(last, Commit) and last.backend == "threads", others.reason
