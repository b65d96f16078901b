"""Writer starvation in a readers-preferring RW lock written with ``Condition.wait_for``.

Written from crewAI's report (https://github.com/crewAIInc/crewAI/pull/4541, "a
continuous stream of readers can indefinitely starve writers"): ``w_acquire()`` waits
for no readers, ``r_acquire()`` only for no writer inside. The writer holds the
condition across its write (a context manager), readers keep overlapping (a relay:
each leaves once the next is in), and the writer waits while they are served.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class RWLock:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0

    def r_acquire(self) -> None:
        with self._cond:  # STARVATION-HERE (a reader served)
            self._readers += 1

    def r_release(self) -> None:
        with self._cond:  # STARVATION-HERE (a reader served)
            self._readers -= 1
            self._cond.notify_all()

    @contextmanager
    def w_locked(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._readers == 0)  # STARVATION-HERE (the writer)
            yield


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
