"""A property whose getter and setter both take the object's lock: the storage it
uses is always accessed under that lock, whatever the caller holds."""

import threading


class Config:
    def __init__(self):
        self._lock = threading.Lock()
        self._level = 0

    @property
    def level(self):
        with self._lock:
            return self._level

    @level.setter
    def level(self, value):
        with self._lock:
            self._level = value


config = Config()
start = threading.Barrier(3)


def tune():
    start.wait(timeout=10)
    for i in range(50):
        config.level = i


def watch(out, i):
    start.wait(timeout=10)
    for _ in range(50):
        out[i] = config.level


out = [None, None]
threads = [threading.Thread(target=tune)]
threads += [threading.Thread(target=watch, args=(out, i)) for i in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert config.level == 49
