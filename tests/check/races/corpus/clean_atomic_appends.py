"""list.append from several threads is one atomic built-in operation."""

import threading

items = []
seen = set()


def work(i):
    for j in range(50):
        items.append((i, j))
        seen.add(j)


threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert len(items) == 150 and len(seen) == 50
