"""A consumer waits on a condition nobody will ever notify."""

import threading

ready = False
cond = threading.Condition()


def consumer() -> None:
    with cond:
        while not ready:
            cond.wait()  # DEADLOCK-HERE


t = threading.Thread(target=consumer)
t.start()
t.join()  # DEADLOCK-HERE
