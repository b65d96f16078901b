"""The main thread joins workers that wait for an event it sets after starting them."""

import threading

go = threading.Event()
results: list[int] = []
lock = threading.Lock()


def worker(i: int) -> None:
    go.wait()
    with lock:
        results.append(i)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
go.set()
for t in threads:
    t.join()
assert sorted(results) == [0, 1, 2, 3]
