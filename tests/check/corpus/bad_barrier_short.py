"""A barrier for three parties, and only two threads arrive."""

import threading

barrier = threading.Barrier(3)


def worker() -> None:
    barrier.wait()  # DEADLOCK-HERE


threads = [threading.Thread(target=worker) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()  # DEADLOCK-HERE
