"""A bounded buffer with one condition, three producers and three consumers."""

import threading

cond = threading.Condition()
buffer: list[int] = []
CAPACITY, PER_PRODUCER = 4, 100
consumed: list[int] = []


def produce(base: int) -> None:
    for i in range(PER_PRODUCER):
        with cond:
            cond.wait_for(lambda: len(buffer) < CAPACITY)
            buffer.append(base + i)
            cond.notify_all()


def consume() -> None:
    for _ in range(PER_PRODUCER):
        with cond:
            cond.wait_for(lambda: buffer)
            consumed.append(buffer.pop(0))
            cond.notify_all()


threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(3)]
threads += [threading.Thread(target=consume) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert len(consumed) == 3 * PER_PRODUCER
