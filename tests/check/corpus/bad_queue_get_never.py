"""A worker waits for an item nobody will put."""

import queue
import threading

jobs: queue.Queue[int] = queue.Queue()


def worker() -> None:
    jobs.get()  # DEADLOCK-HERE


t = threading.Thread(target=worker)
t.start()
t.join()  # DEADLOCK-HERE
