"""One thread takes the lock around the update, the other does not."""

import threading

lock = threading.Lock()
balance = {"total": 0}


def careful(n):
    for _ in range(n):
        with lock:
            balance["total"] += 1  # RACE-HERE


def careless(n):
    for _ in range(n):
        balance["total"] += 1  # RACE-HERE


threads = [
    threading.Thread(target=careful, args=(100,)),
    threading.Thread(target=careless, args=(100,)),
]
for t in threads:
    t.start()
for t in threads:
    t.join()
