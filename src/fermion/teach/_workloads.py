"""The workloads of the tour, the example command and the benchmarks: module-level
functions, so that worker processes can import them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["array_sum", "calibrate_primes", "count_primes", "pause", "tiny", "wait"]


def count_primes(limit: int) -> int:
    """How many primes are below ``limit``: pure-Python CPU work that holds the GIL."""
    count = 0
    for n in range(2, limit):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            count += 1
    return count


def calibrate_primes(seconds: float) -> int:
    """A ``count_primes`` limit that takes about ``seconds`` on this machine, now."""
    limit = 2_000
    while True:
        started = time.perf_counter()
        count_primes(limit)
        took = time.perf_counter() - started
        if took >= seconds / 4 or limit > 10_000_000:
            # The cost grows a little faster than linearly; 1.3 is close enough here.
            return max(1_000, int(limit * (seconds / max(took, 1e-9)) ** (1 / 1.3)))
        limit *= 2


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
    return float(array.sum())


def tiny(value: int) -> int:
    """A call far cheaper than handing it to any worker."""
    return value * 2 + 1
