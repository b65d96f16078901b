"""The same reader relay under RWLock(policy="fair"): the writer is served in turn.

The readers form a relay: each one leaves only once the next one is inside, so there
is always a reader in; the "fair" policy queues new readers behind the waiting
writer, so the relay pauses (each wait for a successor times out) and the writer enters.
"""

import threading
import time

from fermion.sync import RWLock

READERS = 3
rw = RWLock(policy="fair")
inside = [threading.Event() for _ in range(READERS)]
relay_stops = threading.Event()
wrote = []


def reader(i: int) -> None:
    successor = inside[(i + 1) % READERS]
    while not relay_stops.is_set():
        with rw.read():
            inside[i].set()
            time.sleep(0.001)
            successor.wait(0.2)  # leave only once the next reader is in
            inside[i].clear()


def writer() -> None:
    inside[0].wait(5)
    with rw.write():
        wrote.append("done")


threads = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
threads.append(threading.Thread(target=writer))
for t in threads:
    t.start()
time.sleep(2.0)
relay_stops.set()
for t in threads:
    t.join()
assert wrote == ["done"]
