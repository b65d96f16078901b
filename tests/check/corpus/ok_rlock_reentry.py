"""A recursive function re-enters an RLock; other threads share it."""

import threading

lock = threading.RLock()


def countdown(n: int) -> int:
    with lock:
        return 0 if n == 0 else 1 + countdown(n - 1)


threads = [threading.Thread(target=countdown, args=(50,)) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert countdown(10) == 10
