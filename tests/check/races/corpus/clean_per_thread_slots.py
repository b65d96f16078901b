"""Each thread writes only its own slot of a shared list and of a shared dict."""

import threading

slots = [0] * 4
by_name = {}


def work(i):
    for _ in range(50):
        slots[i] += 1
    by_name[f"worker-{i}"] = slots[i]


threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert slots == [50] * 4 and len(by_name) == 4
