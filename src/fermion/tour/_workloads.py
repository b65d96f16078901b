"""The tour's workloads: module-level functions, so that worker processes can import them."""

from __future__ import annotations

import time

import numpy as np

from fermion._example import calibrate_primes, count_primes

__all__ = ["array_sum", "calibrate_primes", "count_primes", "pause", "tiny", "wait"]


def wait(seconds: float) -> float:
    """I/O-bound work modelled by a sleep: it waits without holding the GIL, as a
    network call or a disk read does."""
    time.sleep(seconds)
    return seconds


def pause(seconds: float) -> None:
    """Warm-up task: a short sleep, so that every worker of a new pool takes one."""
    time.sleep(seconds)


def array_sum(array: np.ndarray) -> float:
    """The sum of a (large) array: NumPy work that releases the GIL."""
    return float(np.sum(array))


def tiny(value: int) -> int:
    """A call far cheaper than handing it to any worker."""
    return value * 2 + 1
