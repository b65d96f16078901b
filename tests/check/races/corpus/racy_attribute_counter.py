"""An attribute counter updated by several threads without a lock."""

import threading


class Stats:
    def __init__(self):
        self.hits = 0

    def record(self):
        self.hits += 1  # RACE-HERE


stats = Stats()


def serve(n):
    for _ in range(n):
        stats.record()


threads = [threading.Thread(target=serve, args=(100,)) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert stats.hits <= 300
