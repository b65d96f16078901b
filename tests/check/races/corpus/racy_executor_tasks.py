"""ThreadPoolExecutor tasks updating shared state without a lock."""

import threading
from concurrent.futures import ThreadPoolExecutor


class Totals:
    def __init__(self):
        self.done = 0
        self.by_kind = {}


totals = Totals()
both_running = threading.Barrier(2)


def task(kind):
    both_running.wait(timeout=10)
    totals.done += 1  # RACE-HERE
    totals.by_kind[kind] = totals.by_kind.get(kind, 0) + 1  # RACE-HERE


with ThreadPoolExecutor(max_workers=2) as pool:
    futures = [pool.submit(task, "a"), pool.submit(task, "a")]
    for f in futures:
        f.result(timeout=10)
assert totals.done == 2
