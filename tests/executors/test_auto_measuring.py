"""How ``auto`` measures: tiny work pays for no probe and runs in the reader's thread,
calls are measured side by side, the measuring threads go on as the chosen pool, and
GIL waits between calls measured side by side are not taken for the calls' own."""

from __future__ import annotations

import itertools
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "measure"))
import measure_helpers as h
from auto_helpers import auto_backend, choice_of, decide_as_if

from fermion import Executor
from fermion._costs._gil import GilProbe
from fermion._costs._platform import cpu_count
from fermion.executors import _auto
from fermion.executors._auto import AutoBackend, _Meter

STEADY = {"process_startup": 0.05, "expected_seconds": 5.0}
needs_two_cores = pytest.mark.skipif(cpu_count() < 2, reason="needs two cores to measure two calls")


class _CountedProbe(GilProbe):
    """A GIL probe that counts how many were started."""

    started = 0

    def start(self) -> None:
        type(self).started += 1
        super().start()


def _thread_of(x: int) -> tuple[int, int]:
    return x, threading.get_ident()


@pytest.mark.parametrize("runs", ["map", "submit"])
def test_tiny_work_starts_no_probe_and_no_watchdog_thread(
    monkeypatch: pytest.MonkeyPatch, runs: str
) -> None:
    monkeypatch.setattr(_CountedProbe, "started", 0)
    monkeypatch.setattr(_auto, "GilProbe", _CountedProbe)
    # However late the first call's thread gets a core back after the call: it is tiny.
    monkeypatch.setattr(_auto, "FIRST_CALL_SLACK", 30.0)
    with Executor("auto", **STEADY) as executor:
        if runs == "map":
            assert list(executor.map(h.square, range(5000))) == [x * x for x in range(5000)]
        else:
            futures = [executor.submit(h.square, x) for x in range(100)]
            assert [f.result(timeout=30) for f in futures] == [x * x for x in range(100)]
        choice = choice_of(executor)
        assert auto_backend(executor)._watchdog is None
    assert choice.backend in ("serial", "threads"), str(choice)
    assert "less than the 30 µs it costs to hand one to a worker" in choice.reason
    assert _CountedProbe.started == 0


def test_calls_that_stop_being_tiny_start_the_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a loaded machine a call run in the caller's thread can look like waiting,
    # which would end the measuring: this test is about the watchdog, not that rule.
    monkeypatch.setattr(_Meter, "waiting", lambda self, gil: False)
    monkeypatch.setattr(_auto, "FIRST_CALL_SLACK", 30.0)  # the first call is tiny, however late
    with Executor("auto", measure_seconds=30, max_measure_seconds=30, **STEADY) as executor:
        backend = auto_backend(executor)
        assert executor.submit(h.square, 3).result(timeout=30) == 9
        assert backend._watchdog is None  # tiny so far: nothing to watch
        # Half a millisecond of Python: the calls are tiny no more, the next may run long.
        assert executor.submit(h.python_cpu, 10_000).result(timeout=30) == h.python_cpu(10_000)
        release = threading.Event()
        following = executor.submit(h.spin_until, release)
        assert backend._watchdog is not None  # started as the next call was handed over
        release.set()
        assert following.result(timeout=30) == "done"
        assert backend.choice is None, str(backend.choice)  # three calls: too few to choose


def test_after_choosing_serial_a_map_runs_in_the_thread_that_reads_it() -> None:
    # Enough items that not all of them are sent before the choice (at most four
    # chunks are in flight while measuring, each at most 32 times the last measured).
    with Executor("auto", **STEADY) as executor:
        # Serial is what a map of tiny calls gets with a GIL (without one: threads).
        decide_as_if(executor, gil=True)
        results = list(executor.map(_thread_of, range(200_000)))
        choice = choice_of(executor)
    assert choice.backend == "serial", str(choice)
    assert [x for x, _ in results] == list(range(200_000))
    # The chunks sent once serial was chosen ran here, not on a measuring thread.
    assert results[-1][1] == threading.get_ident()
    assert auto_backend(executor).runs_inline


def test_after_choosing_serial_a_map_runs_each_chunk_as_it_is_read() -> None:
    # Run inline, chunks are run one at a time as the reader reaches them (and read
    # while their results are still in the CPU's cache), not all before the first.
    made = itertools.count()

    def numbered(x: int) -> tuple[int, int]:
        return x, next(made)

    read_at: dict[int, int] = {}
    with Executor("auto", **STEADY) as executor:
        decide_as_if(executor, gil=True)  # serial, as with a GIL
        for x, _ in executor.map(numbered, range(200_000)):
            if x in (100_000, 150_000):
                read_at[x] = next(made)
        choice = choice_of(executor)
    assert choice.backend == "serial", str(choice)
    # When an item was read, at most one more chunk had run beyond it.
    assert read_at[100_000] < read_at[150_000] < 190_000, read_at


@needs_two_cores
def test_calls_are_measured_side_by_side() -> None:
    # Two calls that can only finish together: measured one at a time, they would not.
    meet = threading.Barrier(2, timeout=30)
    with Executor("auto", workers=2, max_measure_seconds=30, **STEADY) as executor:
        futures = [executor.submit(meet.wait) for _ in range(2)]
        assert sorted(f.result(timeout=60) for f in futures) == [0, 1]
        assert auto_backend(executor).choice is None or choice_of(executor).calls <= 2


@needs_two_cores
def test_threads_on_every_measuring_thread_reuse_the_measuring_pool() -> None:
    with Executor("auto", workers=2, **STEADY) as executor:
        assert list(executor.map(h.nap_item, range(40))) == list(range(40))
        choice = choice_of(executor)
        backend = auto_backend(executor)
        assert choice.backend == "threads" and choice.workers == 2, str(choice)
        assert backend.chosen is backend._measuring
    assert not [t for t in threading.enumerate() if t.name.startswith("fermion-auto-measure")]


def test_a_long_first_call_widens_the_measuring_and_starts_the_probe() -> None:
    release = threading.Event()
    with Executor("auto", max_measure_seconds=30, **STEADY) as executor:
        backend = auto_backend(executor)
        first = executor.submit(h.spin_until, release)
        second = executor.submit(h.square, 3)
        # The first call runs past PROBE_AFTER: the next task no longer waits for it
        # (on a single core, it still waits: one measuring thread).
        if backend._measuring_threads >= 2:
            assert second.result(timeout=30) == 9
            assert not first.done()
        release.set()
        assert first.result(timeout=30) == "done"
        assert second.result(timeout=30) == 9
    assert backend._widened
    assert backend._watchdog is not None


def _meter(calls: int, cpu: float, alone: float, shared: float, late: int) -> _Meter:
    meter = _Meter()
    meter.calls = calls
    meter.cpu = cpu
    meter.off_core_alone = alone
    meter.off_core_shared = shared
    meter.wall = cpu + alone + shared
    meter.probe_samples = 100
    meter.probe_late = late
    return meter


@pytest.mark.skipif(not _auto.gil_enabled(), reason="the GIL probe runs only with a GIL")
def test_the_gil_probe_starts_again_when_measuring_resumes() -> None:
    # The probe stops while nothing is measured. It used to stay stopped: a map that
    # paused after its first chunks was judged on the probe's first millisecond or two
    # (too few samples: "holds the GIL"), and file hashing went to processes.
    with Executor("auto", workers=2, measure_seconds=30, max_measure_seconds=30) as executor:
        backend = auto_backend(executor)
        assert executor.submit(h.numpy_heavy).result(timeout=30) > 0  # widens, then idle
        with backend._changed:  # the measuring thread retires the probe after the call
            assert backend._changed.wait_for(lambda: backend._meter.probe is None, 30)
            assert backend._meter.probes_started == 1
        futures = [executor.submit(h.numpy_heavy) for _ in range(4)]
        for future in futures:
            assert future.result(timeout=30) > 0
        assert backend._meter.probes_started == 2


def test_waiting_for_the_gil_next_to_other_calls_is_not_the_calls_own() -> None:
    # Pure Python on two threads: each call waited half its time for the other's GIL.
    held = _meter(calls=10, cpu=0.1, alone=0.0, shared=0.1, late=100).cost(gil=True)
    assert held.wall == pytest.approx(0.01) and held.cpu == pytest.approx(0.01)
    assert held.gil_held == 1.0 and held.waiting == pytest.approx(0.0)
    # Sleeping calls side by side: the GIL was free, the waiting is theirs.
    sleeping = _meter(calls=10, cpu=0.001, alone=0.0, shared=0.099, late=0).cost(gil=True)
    assert sleeping.wall == pytest.approx(0.01) and sleeping.waiting > 0.85
    # Waiting alone is the call's own, whatever the GIL did meanwhile.
    alone = _meter(calls=10, cpu=0.05, alone=0.05, shared=0.0, late=100).cost(gil=True)
    assert alone.wall == pytest.approx(0.01)
    # Without a GIL nothing is subtracted.
    free = _meter(calls=10, cpu=0.1, alone=0.0, shared=0.1, late=100).cost(gil=False)
    assert free.wall == pytest.approx(0.02) and free.gil_held == 0.0


def test_mostly_waiting_needs_enough_gil_samples_when_calls_ran_side_by_side() -> None:
    meter = _meter(calls=4, cpu=0.002, alone=0.0, shared=0.038, late=0)
    assert meter.waiting(gil=True)
    meter.probe_samples = meter.probe_late = 0  # no evidence: the waits may be the GIL's
    assert not meter.waiting(gil=True)
    assert meter.waiting(gil=False)


def test_a_choice_reached_while_tasks_run_keeps_every_result() -> None:
    items: list[Any] = list(range(300))
    with Executor("auto", measure_seconds=0.01, **STEADY) as executor:
        assert list(executor.map(h.nap_item, items[:60])) == items[:60]
        assert list(executor.map(h.square, items)) == [x * x for x in items]
        choice_of(executor)


class _AlwaysHeldProbe(GilProbe):
    """A probe whose every wake-up found the GIL busy (pure Python work)."""

    @property
    def late(self) -> int:
        return self.samples


@pytest.mark.skipif(not _auto.gil_enabled(), reason="processes are chosen only with a GIL")
def test_a_process_pool_started_while_measuring_is_the_one_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_auto, "GilProbe", _AlwaysHeldProbe)
    with Executor("auto", workers=2, **STEADY) as executor:
        assert list(executor.map(h.cpu_item, range(40))) == [h.cpu_item(x) for x in range(40)]
        choice = choice_of(executor)
        backend = auto_backend(executor)
    assert choice.backend == "processes", str(choice)
    assert backend._early_started is not None
    assert backend.chosen is backend._early_started
    assert backend._early_pool is None


def test_tiny_and_waiting_work_start_no_early_process_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(AutoBackend, "_start_early_pool", lambda self, n: calls.append(n))
    with Executor("auto", **STEADY) as executor:
        assert list(executor.map(h.square, range(3000))) == [x * x for x in range(3000)]
        assert list(executor.map(h.nap_item, range(30))) == list(range(30))
    assert calls == []
