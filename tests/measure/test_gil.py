"""gil_load: pure-Python threads read near 1, sleeping threads near 0, NumPy low.

Thresholds leave wide margins: the machine running the tests may be busy."""

from __future__ import annotations

import threading
from collections.abc import Callable

import measure_helpers as h
import pytest

import fermion
from fermion._costs._gil import GilProbe, gil_enabled

needs_gil = pytest.mark.skipif(not gil_enabled(), reason="free-threaded build: no GIL to measure")

WINDOW = 0.4  # seconds of load under the probe


def _measure(target: Callable[[threading.Event], None], threads: int = 2) -> fermion.GilLoad:
    stop = threading.Event()
    workers = h.run_threads(target, threads, stop)
    try:
        with fermion.gil_load() as load:
            stop.wait(WINDOW)  # the measuring window, not a synchronisation
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    return load


@needs_gil
def test_pure_python_threads_hold_the_gil_nearly_always() -> None:
    # One spinning thread holds the GIL all the time and leaves the probe a core, so a
    # busy 2-core machine does not blur the reading.
    load = _measure(h.spin_python, threads=1)
    assert load.held > 0.7, str(load)
    assert load.samples >= 10
    assert load.mean_wait > 0.001  # a waking thread waits about a switch interval
    assert "held" in str(load)


@needs_gil
def test_sleeping_threads_barely_hold_the_gil() -> None:
    load = _measure(h.sleep_loop)
    assert load.held < 0.3, str(load)
    assert load.samples >= 50


@needs_gil
def test_large_numpy_operations_hold_the_gil_little() -> None:
    load = _measure(h.numpy_loop)
    assert load.held < 0.5, str(load)


@needs_gil
def test_an_idle_program_reads_near_zero() -> None:
    with fermion.gil_load() as load:
        threading.Event().wait(0.2)
    assert load.held < 0.3, str(load)


@pytest.mark.skipif(gil_enabled(), reason="needs a free-threaded build running without the GIL")
def test_free_threaded_build_says_there_is_no_gil() -> None:
    load = _measure(h.spin_python)
    assert load.gil_enabled is False
    assert load.held == 0.0
    assert "no GIL" in str(load)


def test_results_are_known_only_after_the_block() -> None:
    with fermion.gil_load() as load:
        with pytest.raises(RuntimeError, match=r"GilLoad.held is known only after"):
            load.held  # noqa: B018
        assert "still measuring" in str(load)
    assert 0.0 <= load.held <= 1.0
    assert load.duration > 0


def test_probe_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match=r"interval must be a positive number of seconds, not 0"):
        GilProbe(interval=0)
    with pytest.raises(ValueError, match=r"threshold must be a positive number of seconds, not -1"):
        GilProbe(threshold=-1)
    probe = GilProbe()
    probe.start()
    try:
        with pytest.raises(RuntimeError, match=r"already started"):
            probe.start()
    finally:
        probe.stop()


def test_a_probe_starts_without_waiting_for_its_thread_and_stops_with_or_without() -> None:
    # (auto starts one next to calls that may hold the GIL for milliseconds: starting
    # it must not wait for a turn; stopping it need not either)
    probe = GilProbe(interval=0.0005)
    probe.start()
    deadline = threading.Event()
    for _ in range(200):  # up to 2 s for three samples
        if probe.samples >= 3:
            break
        deadline.wait(0.01)
    probe.stop(wait=False)
    assert probe.samples >= 3
    probe.stop()  # waits for its thread: no sample after that
    after = probe.samples
    deadline.wait(0.01)
    assert probe.samples == after
