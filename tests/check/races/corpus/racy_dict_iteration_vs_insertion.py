"""A timeout checker thread iterates a dict of start times while other threads insert
and remove entries: "RuntimeError: dictionary changed size during iteration".

From mutmut's timeout checker (https://github.com/boxed/mutmut/issues/410): the checker
thread loops over ``start_time_by_pid.items()`` while the runner records each new
process's start time and the entry is dropped when the process ends, with no lock.
Here the checker records the error instead of dying with it, so the run ends cleanly.
"""

import threading

start_time_by_pid = {}
expired = []
crashes = []


def timeout_checker(rounds, timeout):
    for now in range(rounds):
        try:
            for pid, start in start_time_by_pid.items():  # RACE-HERE
                if now - start > timeout:
                    expired.append(pid)  # mutmut kills the process here
        except RuntimeError as error:
            crashes.append(error)


def start_mutants(count):
    for pid in range(count):
        start_time_by_pid[pid] = pid  # RACE-HERE


def reap_mutants(count):
    for pid in range(count):
        start_time_by_pid.pop(pid, None)  # RACE-HERE


threads = [
    threading.Thread(target=timeout_checker, args=(50, 10), name="checker"),
    threading.Thread(target=start_mutants, args=(50,), name="runner"),
    threading.Thread(target=reap_mutants, args=(50,), name="reaper"),
]
for t in threads:
    t.start()
for t in threads:
    t.join()
