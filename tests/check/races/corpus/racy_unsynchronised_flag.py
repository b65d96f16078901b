"""A result published through a plain attribute, read before the writer is joined."""

import threading


class Shared:
    def __init__(self):
        self.value = 0


shared = Shared()


def writer():
    shared.value = 42  # RACE-HERE


t = threading.Thread(target=writer)
t.start()
seen = shared.value  # RACE-HERE
t.join()
assert seen in (0, 42)
