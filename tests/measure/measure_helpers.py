"""Workloads with a clear-cut kind, for the measuring tests (module level: picklable)."""

from __future__ import annotations

import threading
import time

import numpy as np

_ARRAY = np.random.default_rng(0).random(1_000_000)
_OUT = np.empty_like(_ARRAY)


def python_cpu(iterations: int = 100_000) -> int:
    """Pure Python arithmetic: holds the GIL the whole time."""
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def napping(seconds: float = 0.005) -> None:
    """Waits without the GIL."""
    time.sleep(seconds)


def numpy_heavy(rounds: int = 3) -> float:
    """Large NumPy ufuncs: the GIL is released inside each."""
    for _ in range(rounds):
        np.sqrt(_ARRAY, out=_OUT)
        np.sin(_OUT, out=_OUT)
    return float(_OUT[0])


def square(x: int) -> int:
    return x * x


def cpu_item(x: int) -> int:
    return python_cpu(60_000) + x


def nap_item(x: int) -> int:
    time.sleep(0.01)
    return x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise KeyError(f"item {x} is bad")
    return x


def spin_until(event: threading.Event, limit: float = 10.0) -> str:
    """Pure Python wait (interruptible by a kill) until ``event`` is set."""
    end = time.monotonic() + limit
    while not event.is_set() and time.monotonic() < end:
        pass
    return "done"


def run_threads(target: object, count: int, stop: threading.Event) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=target, args=(stop,), name=f"load-{i}")  # type: ignore[arg-type]
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    return threads


def spin_python(stop: threading.Event) -> None:
    while not stop.is_set():
        python_cpu(2_000)


def sleep_loop(stop: threading.Event) -> None:
    while not stop.is_set():
        stop.wait(0.002)
        time.sleep(0.002)


def numpy_loop(stop: threading.Event) -> None:
    while not stop.is_set():
        numpy_heavy(1)
