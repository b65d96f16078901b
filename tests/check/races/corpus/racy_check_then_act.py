"""Check-then-act on a dict: two threads may both miss and both compute."""

import threading

cache = {}


def lookup(key):
    if key not in cache:  # RACE-HERE
        cache[key] = key * 2  # RACE-HERE
    return cache[key]  # RACE-HERE


start = threading.Barrier(2)


def worker():
    start.wait(timeout=10)
    for key in range(20):
        lookup(key)


threads = [threading.Thread(target=worker) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
