"""Slowdown of a race-checked run vs a plain run, on a few representative programs.

Each program is written to a temporary directory and run in this process twice per
repeat: plainly (``runpy.run_path``) and under the race detector
(``fermion.check._races.session``: instrumented code, checked primitives). The best of
the repeats is kept; the ratio is checked / plain. The "prims" column runs with
checked primitives only (``patch_threading``, no instrumentation): the part of the
cost that the checked locks themselves take. Goal: at most 20x (ThreadSanitizer,
the C/C++ anchor, costs 5-15x).

    python benchmarks/bench_races.py           # the real measurement
    python benchmarks/bench_races.py --quick   # a smoke test in seconds
    python benchmarks/bench_races.py --only pipeline --n 50000 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import runpy
import sys
import tempfile
import time

from fermion.check._races import session

PROGRAMS = {
    "lecture counter (global +=, locked)": """
import threading
counter = 0
lock = threading.Lock()

def work(n):
    global counter
    for _ in range(n):
        with lock:
            counter += 1

threads = [threading.Thread(target=work, args=(N,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
""",
    "objects (attributes, methods)": """
import threading

class Account:
    def __init__(self):
        self.balance = 0
        self.ops = 0
    def deposit(self, amount):
        self.balance += amount
        self.ops += 1

def work(n):
    acc = Account()
    for i in range(n):
        acc.deposit(i % 7)
        if acc.balance > 1000:
            acc.balance -= 1000
    return acc.ops

threads = [threading.Thread(target=work, args=(N,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
""",
    "containers (dict and list subscripts)": """
import threading
lock = threading.Lock()
totals = {}

def work(seed, n):
    counts = {}
    window = [0] * 16
    for i in range(n):
        key = (seed * 31 + i) % 97
        counts[key] = counts.get(key, 0) + 1
        window[i % 16] = window[(i + 1) % 16] + key
    with lock:
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v

threads = [threading.Thread(target=work, args=(s, N)) for s in range(4)]
for t in threads: t.start()
for t in threads: t.join()
""",
    "pipeline (queue hand-off)": """
import queue
import threading

class Item:
    def __init__(self, n):
        self.n = n
        self.result = None

q = queue.Queue(maxsize=64)
out = []

def produce(n):
    for i in range(n):
        q.put(Item(i))
    q.put(None)

def consume():
    while True:
        item = q.get()
        if item is None:
            break
        item.result = item.n * 2
        out.append(item)

threads = [threading.Thread(target=produce, args=(N // 10,)), threading.Thread(target=consume)]
for t in threads: t.start()
for t in threads: t.join()
""",
    "numeric loop (locals only, one shared total)": """
import threading
lock = threading.Lock()
grand = 0

def work(n):
    global grand
    total = 0
    for i in range(n):
        total += (i * i) % 13
    with lock:
        grand += total

threads = [threading.Thread(target=work, args=(N * 4,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
""",
}


def run_plain(path: str) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        runpy.run_path(path, run_name="__main__")
    return time.perf_counter() - start


def run_primitives_only(path: str) -> float:
    """Checked primitives (as a race session makes them) but no instrumentation or listener."""
    from fermion.check._patch import patch_threading

    start = time.perf_counter()
    with patch_threading(), contextlib.redirect_stdout(io.StringIO()):
        runpy.run_path(path, run_name="__main__")
    return time.perf_counter() - start


def run_checked(path: str) -> tuple[float, int]:
    start = time.perf_counter()
    handle = session.start(path, [])
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(path, run_name="__main__")
    finally:
        findings = handle.stop()
    return time.perf_counter() - start, len(findings)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke test")
    parser.add_argument(
        "--n", type=int, default=None, help="iterations per thread (default 50000, quick 2000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="best of this many (default 5, quick 1)"
    )
    parser.add_argument(
        "--only", default="", help="run only the programs whose name contains this text"
    )
    options = parser.parse_args()
    n = options.n or (2_000 if options.quick else 50_000)
    repeats = options.repeats or (1 if options.quick else 5)
    print(f"Python {sys.version.split()[0]}; N={n}; best of {repeats}")
    print(
        f"{'program':<46} {'plain s':>9} {'prims s':>9} {'checked s':>10} {'slowdown':>9} "
        f"{'(prims)':>8} {'races':>6}"
    )
    ratios = []
    with tempfile.TemporaryDirectory(prefix="fermion-bench-races-") as tmp:
        for i, (name, body) in enumerate(PROGRAMS.items()):
            if options.only not in name:
                continue
            path = os.path.join(tmp, f"program_{i}.py")
            with open(path, "w", encoding="utf-8") as f:
                f.write(f"N = {n}\n{body}")
            plain = min(run_plain(path) for _ in range(repeats))
            prims = min(run_primitives_only(path) for _ in range(repeats))
            checked_runs = [run_checked(path) for _ in range(repeats)]
            checked = min(t for t, _ in checked_runs)
            races = checked_runs[0][1]
            ratio = checked / plain
            ratios.append(ratio)
            print(
                f"{name:<46} {plain:>9.4f} {prims:>9.4f} {checked:>10.4f} {ratio:>8.1f}x "
                f"{prims / plain:>7.1f}x {races:>6}"
            )
    geo = 1.0
    for r in ratios:
        geo *= r
    geo **= 1 / len(ratios)
    print(f"geometric mean slowdown: {geo:.1f}x (goal: <= 20x); worst: {max(ratios):.1f}x")


if __name__ == "__main__":
    main()
