"""A task filed in a dict and changed afterwards: what its maker wrote before the
store is published with it, what it writes after the store is not, and races with the
scanner that reads it (the dict races too: an insertion against an iteration)."""

import threading
import time


class Task:
    def __init__(self, number):
        self.number = number
        self.state = "new"


tasks = {}


def schedule():
    for number in range(20):
        task = Task(number)
        tasks[number] = task  # RACE-HERE
        task.state = "queued"  # RACE-HERE


def scan(out):
    deadline = time.monotonic() + 30
    states = []
    while time.monotonic() < deadline:
        states = [task.state for task in list(tasks.values())]  # RACE-HERE
        if states.count("queued") == 20:
            break
    out.append(len(states))


out = []
threads = [threading.Thread(target=schedule), threading.Thread(target=scan, args=(out,))]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert out == [20]
