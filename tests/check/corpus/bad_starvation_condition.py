"""A consumer re-waits on a condition while every item goes to the others."""

import threading
import time

cond = threading.Condition()
items: list[str] = []
served = 0


def picky() -> None:
    with cond:
        while "for-picky" not in items:
            cond.wait()  # STARVATION-HERE
        items.remove("for-picky")


def greedy() -> None:
    global served
    while True:
        with cond:  # STARVATION-HERE (served)
            while not items:
                cond.wait()  # STARVATION-HERE (served)
            item = items.pop(0)
            if item == "stop":
                items.append("stop")
                cond.notify_all()
                return
            if item == "for-picky":
                items.append(item)
                continue
            served += 1


consumers = [threading.Thread(target=picky), threading.Thread(target=greedy)]
for t in consumers:
    t.start()
deadline = time.monotonic() + 2.0
while time.monotonic() < deadline:
    with cond:  # STARVATION-HERE (served)
        items.append("for-others")
        cond.notify_all()
    time.sleep(0.01)
with cond:
    items.append("for-picky")
    items.append("stop")
    cond.notify_all()
for t in consumers:
    t.join()
