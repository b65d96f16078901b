"""A thread takes a (non-reentrant) Lock it already holds."""

import threading

lock = threading.Lock()


def update() -> None:
    with lock:  # DEADLOCK-HERE
        helper()


def helper() -> None:
    with lock:  # DEADLOCK-HERE
        pass


update()
