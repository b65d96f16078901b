"""crewAI's fix of its RW lock (https://github.com/crewAIInc/crewAI/pull/4541): "new
readers block when writers are waiting". Same relay of readers as
bad_starvation_rwlock_wait_for.py; the writer is let in within a fraction of a second.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class RWLock:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._waiting_writers = 0

    def r_acquire(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._waiting_writers == 0)
            self._readers += 1

    def r_release(self) -> None:
        with self._cond:
            self._readers -= 1
            self._cond.notify_all()

    @contextmanager
    def w_locked(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            try:
                self._cond.wait_for(lambda: self._readers == 0)
            finally:
                self._waiting_writers -= 1
            yield
            self._cond.notify_all()


READERS = 3
lock = RWLock()
inside = [threading.Event() for _ in range(READERS)]
relay_stops = threading.Event()
config = {"version": 0}


def reader(i: int) -> None:
    successor = inside[(i + 1) % READERS]
    while not relay_stops.is_set():
        lock.r_acquire()
        inside[i].set()
        _ = config["version"]
        time.sleep(0.001)
        successor.wait(0.2)
        inside[i].clear()
        lock.r_release()


def writer() -> None:
    inside[0].wait(5)
    with lock.w_locked():
        config["version"] += 1


threads = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
threads.append(threading.Thread(target=writer))
for t in threads:
    t.start()
time.sleep(2.0)
relay_stops.set()
for t in threads:
    t.join()
assert config["version"] == 1
