"""os.fork() while another thread is inside a logging handler (its lock held).

Written from dd-trace-py's report (https://github.com/DataDog/dd-trace-py/pull/18900):
"The deadlock happens when a logging handler lock is held by another thread at fork
time. In the forked child, only the forking thread survives, so logging ... can block
forever". Here a thread is logging through a handler whose stream blocks (the handler's
lock is held meanwhile) when the main thread forks. The child does not log (it would
hang on that lock); it exits at once.
"""

import logging
import os
import threading

writing = threading.Event()
release = threading.Event()


class SlowStream:
    """A stream that blocks in write() until told to go on (a slow disk or socket)."""

    def write(self, text: str) -> None:
        writing.set()
        release.wait(10)

    def flush(self) -> None:
        pass


log = logging.getLogger("app")
log.propagate = False
log.addHandler(logging.StreamHandler(SlowStream()))


def worker() -> None:
    log.warning("a record")  # DEADLOCK-HERE (the holder, inside the handler)


t = threading.Thread(target=worker)
t.start()
writing.wait(10)
pid = os.fork()  # DEADLOCK-HERE (the fork)
if pid == 0:
    os._exit(0)
release.set()
os.waitpid(pid, 0)
t.join()
