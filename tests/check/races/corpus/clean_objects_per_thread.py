"""Short-lived objects per thread: freed ids are reused, yet nothing is shared."""

import threading


class Point:
    def __init__(self, x):
        self.x = x


def churn(n):
    for i in range(n):
        p = Point(i)
        p.x += 1
        d = {"k": p.x}
        d["k"] += 1
        del p, d


threads = [threading.Thread(target=churn, args=(300,)) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
