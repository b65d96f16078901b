"""Executor tasks read inputs prepared before submit; results are read via result()."""

from concurrent.futures import ThreadPoolExecutor


class Report:
    def __init__(self):
        self.lines = []
        self.total = 0


inputs = {"scale": 3}
report = Report()


def task(n):
    out = Report()
    out.total = n * inputs["scale"]
    return out


with ThreadPoolExecutor(max_workers=3) as pool:
    futures = [pool.submit(task, n) for n in range(10)]
    for f in futures:
        partial = f.result(timeout=10)
        report.total += partial.total
        partial.total = 0
    mapped = list(pool.map(task, range(5)))
for m in mapped:
    m.total += 1
assert report.total == 135
