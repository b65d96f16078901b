"""Two threads only insert (and delete) different keys of one dict, and the dict is
iterated after both are joined: each insertion is one atomic dict operation, so
nothing races. A detector that modelled "changes the key set" as a conflicting write
of one location would report the two inserting threads; it must not.
"""

import threading

results = {}
pending = set()


def worker(name, count):
    for i in range(count):
        results[(name, i)] = i * i
        pending.add((name, i))
        pending.discard((name, i))
    results.pop((name, 0))


threads = [threading.Thread(target=worker, args=(n, 50)) for n in ("a", "b")]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert sum(v for v in results.values()) == 2 * sum(i * i for i in range(1, 50))
assert not pending and len(list(results)) == 98
