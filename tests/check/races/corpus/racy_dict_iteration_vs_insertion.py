"""A timeout checker thread iterates a dict of start times while the runner inserts and
deletes entries: "RuntimeError: dictionary changed size during iteration".

From mutmut's timeout checker (https://github.com/boxed/mutmut/issues/410): the checker
thread loops over ``start_time_by_pid.items()`` while the main thread records each new
process's start time and drops it when the process ends, with no lock. Here the
checker records the error instead of dying with it, so the run ends cleanly.
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


def run_mutants(count):
    for pid in range(count):
        start_time_by_pid[pid] = pid  # RACE-HERE
        if pid >= 3:
            del start_time_by_pid[pid - 3]  # RACE-HERE


checker = threading.Thread(target=timeout_checker, args=(50, 10), name="checker")
checker.start()
run_mutants(50)
checker.join()
