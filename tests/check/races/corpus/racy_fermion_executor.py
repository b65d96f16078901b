"""fermion.Executor tasks updating one shared attribute without a lock."""

import threading

import fermion


class Acc:
    def __init__(self):
        self.total = 0


acc = Acc()
both_running = threading.Barrier(2)


def task(n):
    both_running.wait(timeout=10)
    acc.total += n  # RACE-HERE


with fermion.Executor(backend="threads", workers=2) as ex:
    for f in [ex.submit(task, 1), ex.submit(task, 2)]:
        f.result(timeout=10)
