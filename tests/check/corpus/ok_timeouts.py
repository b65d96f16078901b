"""Every wait has a timeout; some expire, none is a deadlock."""

import contextlib
import queue
import threading

lock = threading.Lock()
never = threading.Event()
empty: queue.Queue[int] = queue.Queue()
release = threading.Event()
held = threading.Event()


def holder() -> None:
    with lock:
        held.set()
        release.wait(5)


t = threading.Thread(target=holder)
t.start()
held.wait(5)
assert not lock.acquire(timeout=0.3)
assert not never.wait(0.3)
with contextlib.suppress(queue.Empty):
    empty.get(timeout=0.3)
release.set()
t.join()
