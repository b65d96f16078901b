"""The main thread joins a worker while holding the lock the worker needs."""

import threading

lock = threading.Lock()
started = threading.Event()


def worker() -> None:
    started.set()
    with lock:  # DEADLOCK-HERE
        pass


with lock:  # DEADLOCK-HERE
    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    t.join()  # DEADLOCK-HERE
