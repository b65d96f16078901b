"""Workers wait without timeout while the main thread sleeps, then sets the event."""

import threading
import time

go = threading.Event()
threads = [threading.Thread(target=go.wait) for _ in range(3)]
for t in threads:
    t.start()
time.sleep(1.2)  # sleeping is not being stalled
go.set()
for t in threads:
    t.join()
