"""One thread makes tasks and files them in a dict; another keeps scanning the dict
for them (a pool's bookkeeping, as pebble's). The dict itself races (an insertion
against an iteration, with no lock); the fields each task's __init__ wrote do not:
the task was published by the store that put it in the dict, and the scanner could
only find it there."""

import threading
import time


class Task:
    def __init__(self, number):
        self.number = number
        self.timeout = 0.5


tasks = {}


def schedule():
    for number in range(20):
        task = Task(number)
        tasks[number] = task  # RACE-HERE


def scan(out):
    found = set()
    deadline = time.monotonic() + 30
    while len(found) < 20 and time.monotonic() < deadline:
        for task in list(tasks.values()):  # RACE-HERE
            found.add((task.number, task.timeout))
    out.append(len(found))


out = []
threads = [threading.Thread(target=schedule), threading.Thread(target=scan, args=(out,))]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert out == [20]
