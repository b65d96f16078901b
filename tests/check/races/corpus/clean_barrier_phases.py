"""Phase one writes own slots; after a barrier, phase two reads everyone's."""

import threading

N = 3
slots = [0] * N
sums = [0] * N
barrier = threading.Barrier(N)


def work(i):
    slots[i] = i + 1
    barrier.wait(timeout=10)
    sums[i] = sum(slots[j] for j in range(N))


threads = [threading.Thread(target=work, args=(i,)) for i in range(N)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert sums == [6, 6, 6]
