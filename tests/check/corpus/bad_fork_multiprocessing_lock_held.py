"""multiprocessing with the fork start method while another thread holds a lock.

Written from openvas-scanner's report (https://github.com/greenbone/openvas-scanner/pull/491:
"alive detection is running in a thread, it can lock a mutex when the main process is
forking a new child. This mutex is copied into the child process in its locked state,
and any child that tries to lock the mutex waits forever"). The child takes the lock:
it would hang for good; the checks running in the child report the stall there too.
"""

import multiprocessing
import threading

state_lock = threading.Lock()
held = threading.Event()
done = threading.Event()


def alive_detection() -> None:
    with state_lock:  # DEADLOCK-HERE (the holder)
        held.set()
        done.wait(30)


def child() -> None:
    with state_lock:  # DEADLOCK-HERE (the child hangs here)
        pass


t = threading.Thread(target=alive_detection)
t.start()
held.wait(10)
process = multiprocessing.get_context("fork").Process(target=child)
process.start()  # DEADLOCK-HERE (the fork)
done.set()
process.join(30)
t.join()
