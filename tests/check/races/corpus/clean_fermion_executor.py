"""fermion.Executor tasks read inputs prepared before submit; results flow back by result()."""

import fermion


class Acc:
    def __init__(self):
        self.total = 0


acc = Acc()
inputs = {"k": 2}


def task(n):
    return n * inputs["k"]


with fermion.Executor(backend="threads", workers=3) as ex:
    futures = [ex.submit(task, i) for i in range(10)]
    for f in futures:
        acc.total += f.result(timeout=10)
    out = list(ex.map(task, range(5)))
acc.total += sum(out)
assert acc.total == 110
