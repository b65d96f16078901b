"""Three threads, three locks: each holds one and waits for the next."""

import threading

locks = [threading.Lock() for _ in range(3)]
all_hold_one = threading.Barrier(3)


def worker(i: int) -> None:
    with locks[i]:  # DEADLOCK-HERE
        all_hold_one.wait()
        with locks[(i + 1) % 3]:  # DEADLOCK-HERE
            pass


threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
