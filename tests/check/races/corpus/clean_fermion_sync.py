"""fermion.sync's own Lock and Queue protect and hand over state."""

import threading

from fermion import sync

lock = sync.Lock()
inbox = sync.Queue()
shared = {"n": 0}


def worker():
    for _ in range(30):
        with lock:
            shared["n"] += 1
    inbox.put(dict(shared))


threads = [threading.Thread(target=worker) for _ in range(3)]
for t in threads:
    t.start()
snapshots = [inbox.get(timeout=10) for _ in range(3)]
for t in threads:
    t.join()
assert shared["n"] == 90 and len(snapshots) == 3
