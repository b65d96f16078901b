"""The measured start-up time of a process pool (it needs the processes backend)."""

from __future__ import annotations

import threading
import time

from fermion._costs._startup import known_worker_startup, record_worker_startup
from fermion.executors._base import Task
from fermion.executors._processes import ProcessBackend

__all__ = ["worker_startup_seconds"]

_lock = threading.Lock()


def worker_startup_seconds() -> float:
    """Seconds from creating a one-worker ``processes`` pool to its first result, measured
    once per process (later calls return the first measurement). It includes starting
    the forkserver when this is the first pool of the program."""
    with _lock:
        known = known_worker_startup()
        if known is not None:
            return known
        started = time.perf_counter()
        pool = ProcessBackend(workers=1)
        try:
            task = Task(_ready, [((), {})], batch=False)
            pool.submit(task)
            task.future.result(timeout=120)
        finally:
            pool.shutdown(wait=True)
        seconds = time.perf_counter() - started
        record_worker_startup(seconds)
        return seconds


def _ready() -> None:
    """What the start-up probe runs in a fresh worker: nothing."""
