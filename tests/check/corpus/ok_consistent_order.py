"""Many threads take the same locks, always in the same order."""

import threading

a, b, c = threading.Lock(), threading.Lock(), threading.Lock()
total = 0


def work() -> None:
    global total
    for _ in range(200):
        with a, b, c:
            total += 1


threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert total == 800
