"""A barrier with all its parties, over several rounds."""

import threading

barrier = threading.Barrier(3)
rounds: list[int] = []
lock = threading.Lock()


def worker() -> None:
    for r in range(5):
        barrier.wait()
        with lock:
            rounds.append(r)


threads = [threading.Thread(target=worker) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert sorted(rounds) == sorted(list(range(5)) * 3)
