"""The timeout checker of racy_dict_iteration_vs_insertion.py with the fix: the checker
iterates the start times, and the runner inserts and deletes them, under one lock.

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


def run_mutants(count):
    for pid in range(count):
        with lock:
            start_time_by_pid[pid] = pid
            if pid >= 3:
                del start_time_by_pid[pid - 3]


checker = threading.Thread(target=timeout_checker, args=(50, 10), name="checker")
checker.start()
run_mutants(50)
checker.join()
assert sorted(start_time_by_pid) == [47, 48, 49]
