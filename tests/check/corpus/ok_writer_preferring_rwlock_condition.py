"""The fix of chroma's readers-preferring RW lock: a waiting writer holds new readers back.

From https://github.com/chroma-core/chroma/pull/7632 ("track the number of writers
currently waiting"): ``acquire_read()`` waits while a writer waits or writes. Under the
same relay of readers as bad_starvation_readers_rwlock_condition.py, the relay breaks as
soon as the writer arrives (a reader waits at most 0.2 s for its successor), the writer
gets in, and nobody waits long.
"""

import threading
import time


class ReadWriteLock:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writers_waiting = 0
        self._writing = False

    def acquire_read(self) -> None:
        with self._cond:
            while self._writers_waiting or self._writing:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            self._writers_waiting += 1
            while self._readers > 0 or self._writing:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True

    def release_write(self) -> None:
        with self._cond:
            self._writing = False
            self._cond.notify_all()


READERS = 3
rw = ReadWriteLock()
inside = [threading.Event() for _ in range(READERS)]
relay_stops = threading.Event()
wrote = []


def reader(i: int) -> None:
    successor = inside[(i + 1) % READERS]
    while not relay_stops.is_set():
        rw.acquire_read()
        inside[i].set()
        time.sleep(0.001)
        successor.wait(0.2)
        inside[i].clear()
        rw.release_read()


def writer() -> None:
    inside[0].wait(5)
    rw.acquire_write()
    wrote.append("done")
    rw.release_write()


threads = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
threads.append(threading.Thread(target=writer))
for t in threads:
    t.start()
time.sleep(2.0)
relay_stops.set()
for t in threads:
    t.join()
assert wrote == ["done"]
