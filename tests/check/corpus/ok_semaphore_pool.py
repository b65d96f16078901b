"""A semaphore limits concurrency; every permit is given back."""

import threading

permits = threading.BoundedSemaphore(2)
inside = 0
peak = 0
lock = threading.Lock()


def worker() -> None:
    global inside, peak
    for _ in range(20):
        with permits:
            with lock:
                inside += 1
                peak = max(peak, inside)
            with lock:
                inside -= 1


threads = [threading.Thread(target=worker) for _ in range(5)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert peak <= 2
