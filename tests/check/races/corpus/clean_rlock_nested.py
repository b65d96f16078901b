"""Nested methods re-enter one RLock around every access."""

import threading


class Inventory:
    def __init__(self):
        self.lock = threading.RLock()
        self.count = 0

    def add(self, n):
        with self.lock:
            self.count += n

    def add_twice(self, n):
        with self.lock:
            self.add(n)
            self.add(n)


inv = Inventory()
threads = [threading.Thread(target=inv.add_twice, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with inv.lock:
    assert inv.count == 12
