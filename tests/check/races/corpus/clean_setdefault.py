"""dict.setdefault and per-key appends are single atomic built-in operations."""

import threading

groups = {}


def work(i):
    for j in range(30):
        groups.setdefault(j % 5, []).append(i)


threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert sum(len(v) for v in groups.values()) == 90
