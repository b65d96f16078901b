"""fermion.profile classifies clear-cut workloads (robust on a busy 2-core machine)."""

from __future__ import annotations

import threading

import measure_helpers as h
import pytest

import fermion
from fermion._costs._cost import gil_enabled, pickle_cost


def test_pure_python_is_cpu_work_that_holds_the_gil() -> None:
    result = fermion.profile(h.python_cpu, 100_000)
    assert result.calls >= 3
    assert result.wall > 0 and result.cpu > 0
    assert result.waiting < 0.5, str(result)
    if gil_enabled():
        assert result.holds_gil, str(result)
        assert result.kind == "cpu-gil"
        assert result.cost.gil_held >= 0.5
    else:
        assert result.gil_held is None and result.kind == "cpu"
    assert result.function.endswith("python_cpu")
    assert result.worker_startup is not None and result.worker_startup > 0


def test_sleeping_is_waiting_and_does_not_hold_the_gil() -> None:
    result = fermion.profile(h.napping, 0.005)
    assert result.kind == "io", str(result)
    assert result.waiting > 0.5
    assert not result.holds_gil
    assert result.wall >= 0.004
    assert result.thread_speedup is not None and result.thread_speedup > 1.3


def test_large_numpy_does_not_hold_the_gil() -> None:
    result = fermion.profile(h.numpy_heavy, 2)
    assert not result.holds_gil, str(result)
    assert result.kind in ("cpu", "io")


def test_summary_reads_like_a_report() -> None:
    text = str(fermion.profile(h.napping, 0.002))
    for label in ("wall time", "CPU time", "GIL", "2 threads", "arguments", "worker start"):
        assert label in text
    assert "mostly waiting" in text


def test_arguments_that_cannot_be_pickled_are_reported() -> None:
    result = fermion.profile(len, [threading.Lock()])
    assert result.pickle_error is not None
    assert "function or arguments" in result.pickle_error
    assert result.cost.picklable is False
    assert "cannot be pickled" in str(result)


def test_pickle_cost_measures_size() -> None:
    cost = pickle_cost(bytes(100_000))
    assert cost.ok and cost.size >= 100_000 and cost.seconds >= 0


def test_exceptions_of_the_function_reach_the_caller() -> None:
    with pytest.raises(KeyError, match="item 3 is bad"):
        fermion.profile(h.fail_on_three, 3)


def test_profile_needs_a_callable() -> None:
    with pytest.raises(TypeError, match=r"fermion.profile needs a callable, got int: 3"):
        fermion.profile(3)  # type: ignore[arg-type]
