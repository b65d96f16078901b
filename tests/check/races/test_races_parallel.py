"""The detector under real parallelism: the same findings on every run.

On a free-threaded build the checked threads record in parallel, each under the stripe
lock of the location it touches (``RaceDetector.lock_for``), not under one lock. These
programs hand many short-lived objects through queues (ids are reused as they die),
share globals, attributes and dict keys, and must give exactly the expected findings
run after run. They run on GIL builds too (fewer times): the verdict may not depend on
the build or the schedule.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from race_detection import detect, marked_lines

FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()
RUNS = 20 if FREE_THREADED else 4

# Four workers start together (a barrier, with a timeout) and each passes objects to
# the next through a queue; the producer's writes happen-before the consumer's
# accesses (queue hand-off), so only the unlocked shared updates race.
PREAMBLE = """
import queue
import threading

WORKERS = 4
ITEMS = 300
start = threading.Barrier(WORKERS)
lock = threading.Lock()
queues = [queue.Queue(maxsize=8) for _ in range(WORKERS)]
totals = {}
slots = {}


class Item:
    def __init__(self, n):
        self.n = n
        self.seen = 0


class Stats:
    def __init__(self):
        self.hits = 0
        self.locked = 0


stats = Stats()
"""

WORKER = """

def work(me):
    start.wait(timeout=30)
    out, inbox = queues[me], queues[(me - 1) % WORKERS]
    for i in range(ITEMS):
        out.put(Item(i), timeout=30)
        item = inbox.get(timeout=30)
        item.seen = item.n + 1
        with lock:
            stats.locked += 1
            totals[i % 7] = totals.get(i % 7, 0) + item.seen
{extra}

threads = [threading.Thread(target=work, args=(k,), name=f"w{{k}}") for k in range(WORKERS)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=60)
assert not any(t.is_alive() for t in threads), "a worker hung"
assert stats.locked == WORKERS * ITEMS
"""

CLEAN = PREAMBLE + WORKER.format(extra="")
RACY = PREAMBLE + WORKER.format(
    extra="        stats.hits += 1  # RACE-HERE\n        slots[me] = i  # per-thread key: clean\n"
)


@pytest.mark.timeout(300)
def test_a_correct_parallel_program_is_clean_on_every_run(tmp_path: Path) -> None:
    path = tmp_path / "clean_parallel.py"
    path.write_text(CLEAN)
    for run in range(RUNS):
        findings = detect(path)
        assert findings == [], f"run {run}: " + "\n".join(f.message for f in findings)


@pytest.mark.timeout(300)
def test_a_racy_parallel_program_gives_the_same_findings_on_every_run(tmp_path: Path) -> None:
    path = tmp_path / "racy_parallel.py"
    path.write_text(RACY)
    expected = marked_lines(RACY)
    assert len(expected) == 1
    for run in range(RUNS):
        findings = detect(path)
        lines = {loc.line for f in findings for loc in f.locations if loc.file == str(path)}
        assert lines == expected, f"run {run}: " + "\n".join(f.message for f in findings)
        assert len(findings) == 1, f"run {run}: " + "\n".join(f.message for f in findings)
        assert findings[0].message.startswith("data race on Stats.hits")
