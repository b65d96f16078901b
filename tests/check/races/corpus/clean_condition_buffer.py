"""A bounded buffer guarded by a Condition: producer and consumer hand items over."""

import threading


class Buffer:
    def __init__(self, size):
        self.items = []
        self.size = size
        self.closed = False
        self.cond = threading.Condition()

    def put(self, item):
        with self.cond:
            while len(self.items) >= self.size:
                self.cond.wait(timeout=10)
            self.items.append(item)
            self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def get(self):
        with self.cond:
            while not self.items and not self.closed:
                self.cond.wait(timeout=10)
            item = self.items.pop(0) if self.items else None
            self.cond.notify_all()
            return item


buffer = Buffer(2)
received = []


def produce():
    for i in range(20):
        buffer.put(i)
    buffer.close()


def consume():
    while (item := buffer.get()) is not None:
        received.append(item)


threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert received == list(range(20))
