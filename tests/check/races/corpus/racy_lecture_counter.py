"""The lecture's unsafe counter: ``counter += 1`` from several threads, no lock."""

import threading

counter = 0


def increment(times):
    global counter
    for _ in range(times):
        counter += 1  # RACE-HERE


threads = [threading.Thread(target=increment, args=(200,)) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
