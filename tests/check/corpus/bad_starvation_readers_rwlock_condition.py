"""A writer starves behind overlapping readers on a hand-written readers-preferring RW lock.

Written from chroma's ReadWriteLock bug report (https://github.com/chroma-core/chroma/pull/7632):
``acquire_write()`` waits on a ``threading.Condition`` until ``_readers`` is zero, and
``acquire_read()`` never looks at a waiting writer, so "a continuous stream of new
readers ... never letting the writer proceed". Here the readers form a relay (each leaves
only once the next one is in), so ``_readers`` never reaches zero while it runs: the
writer waits two seconds while the readers enter the condition thousands of times.
"""

import threading
import time


class ReadWriteLock:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0

    def acquire_read(self) -> None:
        with self._cond:  # STARVATION-HERE (a reader served)
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:  # STARVATION-HERE (a reader served)
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        self._cond.acquire()
        while self._readers > 0:
            self._cond.wait()  # STARVATION-HERE (the writer)

    def release_write(self) -> None:
        self._cond.release()


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
        successor.wait(0.2)  # leave only once the next reader is in
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
