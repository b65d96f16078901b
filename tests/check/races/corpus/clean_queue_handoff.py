"""Objects built by a producer and handed to a consumer through a queue."""

import queue
import threading


class Job:
    def __init__(self, n):
        self.n = n
        self.result = None


jobs = queue.Queue()
done = queue.Queue()


def producer():
    for i in range(20):
        job = Job(i)
        job.n += 1
        jobs.put(job)
    jobs.put(None)


def consumer():
    while True:
        job = jobs.get(timeout=10)
        if job is None:
            break
        job.result = job.n * 2
        done.put(job)


threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
for t in threads:
    t.start()
for t in threads:
    t.join()
results = [done.get(timeout=10).result for _ in range(20)]
assert sorted(results) == [2 * (i + 1) for i in range(20)]
