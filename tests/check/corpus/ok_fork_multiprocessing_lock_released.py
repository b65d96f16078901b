"""The fix of bad_fork_multiprocessing_lock_held.py: no other thread holds the lock at the fork.

(https://github.com/greenbone/openvas-scanner/pull/491: "ensure that no locks are being
held at the time of forking".) The detection thread finishes its critical section before
the fork, and the child takes the lock freely.
"""

import multiprocessing
import threading

state_lock = threading.Lock()
left = threading.Event()
done = threading.Event()


def alive_detection() -> None:
    with state_lock:
        pass
    left.set()
    done.wait(30)


def child() -> None:
    with state_lock:
        pass


t = threading.Thread(target=alive_detection)
t.start()
left.wait(10)
process = multiprocessing.get_context("fork").Process(target=child)
process.start()
process.join(30)
assert process.exitcode == 0
done.set()
t.join()
