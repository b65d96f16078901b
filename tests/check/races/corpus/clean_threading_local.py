"""Per-thread state in threading.local is never shared."""

import threading

state = threading.local()


def work(n):
    state.count = 0
    for _ in range(n):
        state.count += 1
    assert state.count == n


threads = [threading.Thread(target=work, args=(100,)) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
