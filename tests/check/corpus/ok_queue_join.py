"""Workers call task_done() for every job, so queue.join() returns."""

import queue
import threading

jobs: queue.Queue[int | None] = queue.Queue()
done: list[int] = []


def worker() -> None:
    while True:
        job = jobs.get()
        if job is None:
            jobs.task_done()
            return
        done.append(job)
        jobs.task_done()


threads = [threading.Thread(target=worker) for _ in range(3)]
for t in threads:
    t.start()
for i in range(30):
    jobs.put(i)
for _ in threads:
    jobs.put(None)
jobs.join()
for t in threads:
    t.join()
assert sorted(done) == list(range(30))
