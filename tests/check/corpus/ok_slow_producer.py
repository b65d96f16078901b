"""The consumer blocks without timeout while the producer sleeps: not a stall."""

import queue
import threading
import time

jobs: queue.Queue[int | None] = queue.Queue()


def producer() -> None:
    time.sleep(1.2)  # longer than the stall check's confirmation window
    for i in range(3):
        jobs.put(i)
        time.sleep(0.05)
    jobs.put(None)


t = threading.Thread(target=producer)
t.start()
while jobs.get() is not None:
    pass
t.join()
