"""A property whose setter takes the lock but whose getter does not (pebble's
``PoolContext.status``): the race is on the storage, at the getter's and the
setter's lines, not at the callers'."""

import threading


class Pool:
    def __init__(self):
        self._lock = threading.Lock()
        self._status = "running"

    @property
    def status(self):
        return self._status  # RACE-HERE

    @status.setter
    def status(self, value):
        with self._lock:
            self._status = value  # RACE-HERE


pool = Pool()
start = threading.Barrier(2)


def stop():
    start.wait(timeout=10)
    pool.status = "stopped"


def poll(out):
    start.wait(timeout=10)
    for _ in range(50):
        out.append(pool.status)


out = []
threads = [threading.Thread(target=stop), threading.Thread(target=poll, args=(out,))]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert pool.status == "stopped"
