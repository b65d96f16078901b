"""fermion.sync's FairLock, RWLock and atomics used correctly."""

import threading

from fermion.sync import AtomicInt, FairLock, RWLock

fair = FairLock()
rw = RWLock()
counter = AtomicInt()
shared = {"value": 0}


def worker() -> None:
    for _ in range(100):
        with fair:
            counter.add_and_get(1)
        with rw.read():
            _ = shared["value"]
        with rw.write():
            shared["value"] += 1


threads = [threading.Thread(target=worker) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert counter.get() == 400 and shared["value"] == 400
