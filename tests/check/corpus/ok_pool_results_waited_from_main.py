"""Tasks fill a pool while the main thread waits for their results: no pool deadlock.

The correct shape of the nested-submit programs (https://github.com/bshoshany/thread-pool/issues/95):
the waiting happens outside the pool, so every queued task finds a free worker.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

gate = threading.Event()


def task(i: int) -> int:
    gate.wait(10)  # the first two block the two workers until the rest are queued
    return i


with ThreadPoolExecutor(max_workers=2) as pool:
    futures = [pool.submit(task, i) for i in range(6)]
    gate.set()
    assert [f.result() for f in futures] == list(range(6))
