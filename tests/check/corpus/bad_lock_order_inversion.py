# ruff: noqa: SIM117 - the nesting is the point
"""Two code paths take the same two locks in opposite orders; this run does not hang."""

import threading

accounts = threading.Lock()
audit = threading.Lock()


def deposit() -> None:
    with accounts:  # LOCK-ORDER-HERE
        with audit:  # LOCK-ORDER-HERE
            pass


def report() -> None:
    with audit:  # LOCK-ORDER-HERE
        with accounts:  # LOCK-ORDER-HERE
            pass


first = threading.Thread(target=deposit)
first.start()
first.join()
second = threading.Thread(target=report)
second.start()
second.join()
