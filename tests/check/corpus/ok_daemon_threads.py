"""A daemon thread blocked forever does not make a program deadlocked; a daemon producer feeds main."""

import queue
import threading
import time

forever = threading.Event()
threading.Thread(target=forever.wait, daemon=True).start()

results: queue.Queue[int] = queue.Queue()


def slow_daemon_producer() -> None:
    time.sleep(1.0)
    results.put(42)


threading.Thread(target=slow_daemon_producer, daemon=True).start()
assert results.get() == 42
