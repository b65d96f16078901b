"""Every worker of a pool waits for a sub-task queued behind it on the same pool.

Written from the nested-submit reports (https://github.com/bshoshany/thread-pool/issues/95:
"If I have 4 threads and each one is trying to run a nested task, then nothing will
happen"; TileDB's https://github.com/TileDB-Inc/TileDB/pull/1757): four outer tasks fill
the four workers, each submits its chunks to the same pool and waits for them. The main
thread only polls, so this is no global stall: the pool alone is stuck. The barrier
makes the bad schedule the only one: every outer task holds its worker before any of
them submits (without it, a worker may finish its outer task before the last is queued).
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

pool = ThreadPoolExecutor(max_workers=4)
all_outer_running = threading.Barrier(4)


def chunk(i: int) -> int:
    return i * i


def outer(n: int) -> int:
    all_outer_running.wait()
    parts = [pool.submit(chunk, i) for i in range(n)]
    return sum(p.result() for p in parts)  # DEADLOCK-HERE


futures = [pool.submit(outer, 3) for _ in range(4)]
deadline = time.monotonic() + 20
while not all(f.done() for f in futures) and time.monotonic() < deadline:
    time.sleep(0.05)
pool.shutdown()
