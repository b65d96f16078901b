"""transfer_estimate: what sending an object to a process costs, large buffers counted
by their size instead of copied."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fermion._costs._cost import (
    COPY_BYTES_PER_SECOND,
    RunQueueClock,
    pickle_cost,
    transfer_estimate,
)


def test_large_arrays_are_counted_by_their_size() -> None:
    array = np.zeros(1_000_000)  # 8 MB
    estimate = transfer_estimate(((array,), {}))
    assert estimate.ok
    assert estimate.size >= array.nbytes
    # Two copies (pickling, unpickling) at the assumed bandwidth, plus the pickling
    # of everything else: at least the copies, and of the same size as pickling it.
    assert estimate.seconds >= 2 * array.nbytes / COPY_BYTES_PER_SECOND
    assert abs(estimate.size - pickle_cost(((array,), {})).size) < 1024


def test_small_objects_are_pickled_as_pickle_cost_does() -> None:
    small = {"a": list(range(100)), "b": "text"}
    assert transfer_estimate(small).size == pickle_cost(small).size
    assert transfer_estimate(small).ok


def test_arrays_that_are_not_contiguous_are_pickled_in_band() -> None:
    strided = np.zeros(200_000)[::2]
    estimate = transfer_estimate(strided)
    assert estimate.ok and estimate.size >= strided.nbytes


def test_what_cannot_be_pickled_is_reported() -> None:
    estimate = transfer_estimate(threading.Lock())
    assert not estimate.ok and estimate.size == 0
    assert estimate.error is not None and "lock" in estimate.error.lower()


def test_a_run_queue_clock_closes_when_dropped() -> None:
    clock = RunQueueClock()
    if not clock.available:
        pytest.skip("no /proc/thread-self/schedstat on this system")
    assert clock() >= 0.0
    clock.__del__()
    assert not clock.available
