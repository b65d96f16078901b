"""Two threads take two locks in opposite orders (the ABBA deadlock)."""

import threading

a, b = threading.Lock(), threading.Lock()
both_hold_one = threading.Barrier(2)


def first() -> None:
    with a:  # DEADLOCK-HERE
        both_hold_one.wait()
        with b:  # DEADLOCK-HERE
            pass


def second() -> None:
    with b:  # DEADLOCK-HERE
        both_hold_one.wait()
        with a:  # DEADLOCK-HERE
            pass


threads = [threading.Thread(target=first), threading.Thread(target=second)]
for t in threads:
    t.start()
for t in threads:
    t.join()
