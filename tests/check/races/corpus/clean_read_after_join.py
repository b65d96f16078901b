"""Threads write their results; the main thread reads them only after join."""

import threading

total = 0


class Result:
    def __init__(self):
        self.value = None


def compute(result, n):
    global total
    result.value = sum(range(n))
    if n == 10:
        total = result.value


results = [Result() for _ in range(3)]
threads = [threading.Thread(target=compute, args=(r, 10 * (i + 1))) for i, r in enumerate(results)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert [r.value for r in results] == [45, 190, 435]
assert total == 45
results[0].value += 1
