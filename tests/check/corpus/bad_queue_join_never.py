"""queue.join() waits for a task_done() the worker forgets to call."""

import queue
import threading

jobs: queue.Queue[int] = queue.Queue()


def worker() -> None:
    jobs.get()  # takes the job, never calls task_done()


t = threading.Thread(target=worker)
t.start()
jobs.put(1)
t.join()
jobs.join()  # DEADLOCK-HERE
