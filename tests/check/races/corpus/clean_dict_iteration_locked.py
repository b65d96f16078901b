"""The timeout checker of racy_dict_iteration_vs_insertion.py with the fix: the checker
iterates the start times, and the runner and the reaper insert and remove them, under
one lock.

The bug: https://github.com/boxed/mutmut/issues/410.
"""

import threading

start_time_by_pid = {}
expired = []
lock = threading.Lock()


def timeout_checker(rounds, timeout):
    for now in range(rounds):
        with lock:
            for pid, start in start_time_by_pid.items():
                if now - start > timeout:
                    expired.append(pid)


def start_mutants(count):
    for pid in range(count):
        with lock:
            start_time_by_pid[pid] = pid


def reap_mutants(count):
    for pid in range(count):
        with lock:
            start_time_by_pid.pop(pid, None)


threads = [
    threading.Thread(target=timeout_checker, args=(50, 10), name="checker"),
    threading.Thread(target=start_mutants, args=(50,), name="runner"),
    threading.Thread(target=reap_mutants, args=(50,), name="reaper"),
]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert len(start_time_by_pid) <= 50
