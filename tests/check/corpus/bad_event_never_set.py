"""The main thread waits for an event nobody sets."""

import threading

done = threading.Event()
done.wait()  # DEADLOCK-HERE
