"""Several threads update the same list slot (``slots[0] += 1``)."""

import threading

slots = [0, 0]


def bump(n):
    for _ in range(n):
        slots[0] += 1  # RACE-HERE


threads = [threading.Thread(target=bump, args=(100,)) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
