"""The race detector and the deadlock checker never hang the program they check when
Python code comes back into them from inside: a key's ``__eq__``/``__hash__``, a
``__del__``, a weakref callback, a gc callback, a signal handler.

Each program runs under ``fermion check`` in a subprocess (a hang is a timeout there,
not a stuck test run), enough times over to land its hook inside the runtime again and
again (the programs print how often work was queued for that, and the tests require
it where the hook cannot help landing there), and the race each program plants is
still reported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

# Every program ends with this line: the runtime's count of re-entries, on stderr.
REPORT_REENTRIES = """
from fermion.check._races import _runtime
print("reentries", _runtime.reentries, "dropped", _runtime.dropped, file=sys.stderr)
"""

# A race every program plants: two threads bump a global with no lock.
PLANTED = """
planted = 0


def bump_planted():
    global planted
    planted += 1


def planted_race():
    threads = [threading.Thread(target=bump_planted) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""

EQ_HASH = """
import sys, threading

class Key:
    compared = 0
    def __init__(self, v):
        self.v = v
    def __hash__(self):
        Key.compared += 0  # an instrumented class attribute, read and written
        return self.v % 3  # collisions: __eq__ runs on every lookup
    def __eq__(self, other):
        Key.compared += 0
        return isinstance(other, Key) and self.v == other.v

KEYS = [Key(i) for i in range(60)]
table = {}
lock = threading.Lock()

def work():
    for i in range(1500):
        k = KEYS[i % 60]
        with lock:
            table[k] = table.get(k, 0) + 1
            if k in table:
                table[k] += 0

threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
planted_race()
assert sum(table.values()) == 4500, sum(table.values())
"""

FINALISERS = """
import gc, sys, threading, weakref

gc.set_threshold(3, 1, 1)  # a collection every few allocations: inside the runtime too
# What the collector runs (__del__ of cycles, weakref.finalize) counts under a lock of
# its own: collections do not nest, so it is never taken by a finaliser run inside its
# own acquisition (the detector would see that one without it: docs/races.md).
freed_lock = threading.Lock()
freed = {"del": 0, "finalize": 0}
# Weakref callbacks also run when a reference count drops (not only in a collection)
# and count per thread: no lock, no race.
per_thread = threading.local()
work_lock = threading.Lock()
shared = {}
done = threading.Event()

class Node:
    def __init__(self):
        self.me = self  # a cycle: only the collector frees it
    def __del__(self):
        with freed_lock:
            freed["del"] += 1
        done.set()

def finalised():
    with freed_lock:
        freed["finalize"] += 1

class Target:
    pass

def on_death(_ref):
    per_thread.n = getattr(per_thread, "n", 0) + 1

def work():
    refs = []
    for i in range(2000):
        Node()
        f = Target()
        f.me = f  # in a cycle too: finalised runs only in a collection
        weakref.finalize(f, finalised)
        del f
        t = Target()
        t.me = t
        refs.append(weakref.ref(t, on_death))
        with work_lock:
            shared[i % 7] = i
    refs.clear()
    assert per_thread.n > 0

threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
gc.collect()
planted_race()
assert done.is_set() and freed["del"] > 0 and freed["finalize"] > 0, freed
"""

GC_CALLBACK = """
import gc, sys, threading

gc.set_threshold(3, 1, 1)
collections = {"n": 0}
stats_lock = threading.RLock()  # re-entrant, as freed_lock above

def on_gc(phase, info):
    with stats_lock:
        collections["n"] += 1

gc.callbacks.append(on_gc)

class Cell:
    def __init__(self):
        self.me = self

shared = {}
shared_lock = threading.Lock()

def work():
    for i in range(2000):
        Cell()
        with shared_lock:
            shared[i % 11] = Cell()

threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
gc.callbacks.remove(on_gc)
planted_race()
assert collections["n"] > 0
"""

SIGNALS = """
import signal, sys, threading

hits = {"n": 0}

class Box:
    pass

box = Box()

def handler(signum, frame):
    hits["n"] += 1
    box.last = hits["n"]  # instrumented writes, in the middle of whatever main does
    fresh = Box()  # a new object: its access misses the cache and is recorded
    fresh.n = hits["n"]
    # (No Event.set() here: handlers nest, and a nested one would wait for the
    # Event's lock its outer one holds, in plain Python too.)

signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
data = {}
try:
    for i in range(30000):
        b = Box()          # a new object each time: every access takes the slow path
        b.value = i
        data[i % 97] = b
        box.seen = b.value
finally:
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
planted_race()
assert hits["n"] > 0
"""


def check_json(script: Path, *flags: str) -> tuple[dict[str, Any], str]:
    """Run *script* under ``fermion check *flags``; the JSON report and stderr."""
    report = script.with_suffix(".json")
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-m", "fermion", "check", *flags, "--format", "json"]
    result = subprocess.run(
        [*command, "--output", str(report), str(script)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert report.exists(), result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert data["program"]["exit_code"] == 0, result.stdout + result.stderr
    return data, result.stderr


def run_checked(tmp_path: Path, name: str, body: str, *flags: str) -> tuple[dict[str, Any], str]:
    """Run *body* (with the planted race) under ``fermion check``; the JSON report and stderr."""
    script = tmp_path / f"{name}.py"
    script.write_text(
        "import sys, threading\n" + PLANTED + textwrap.dedent(body) + REPORT_REENTRIES
    )
    return check_json(script, *flags)


def reentries(stderr: str) -> int:
    line = next(line for line in stderr.splitlines() if line.startswith("reentries "))
    return int(line.split()[1])


def race_messages(data: dict[str, Any]) -> list[str]:
    return [f["message"] for f in data["findings"] if f["kind"] == "race"]


@pytest.mark.parametrize(
    ("name", "body", "must_reenter"),
    [
        ("eq_hash", EQ_HASH, False),
        ("finalisers", FINALISERS, True),
        ("gc_callback", GC_CALLBACK, True),
        pytest.param(
            "signals",
            SIGNALS,
            True,
            marks=pytest.mark.skipif(
                not hasattr(signal, "setitimer"),
                reason="no setitimer",
            ),
        ),
    ],
)
def test_hooks_that_come_back_into_the_race_detector_never_hang_it(
    tmp_path: Path, name: str, body: str, must_reenter: bool
) -> None:
    data, stderr = run_checked(tmp_path, name, body, "--races")
    messages = race_messages(data)
    # The planted race is found, and nothing else: every other access is locked or
    # ordered (the hooks' own accesses included).
    assert len(messages) == 1, messages
    assert "data race on planted" in messages[0], messages
    if must_reenter:
        assert reentries(stderr) > 0, stderr


NESTED_IN_FINALISERS = """
import gc, sys, threading

gc.set_threshold(3, 1, 1)
outer, inner = threading.Lock(), threading.Lock()

class Node:
    def __init__(self):
        self.me = self
    def __del__(self):
        # New locks nested: each is a new lock-order edge, checked while the
        # collection may be running inside the checker's own check of another.
        a, b = threading.Lock(), threading.Lock()
        with a:
            with b:
                pass

def work():
    for _ in range(1500):
        Node()
        with outer:
            with inner:
                pass

threads = [threading.Thread(target=work) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
planted_race()
"""


def test_finalisers_nesting_locks_never_hang_the_deadlock_checker(tmp_path: Path) -> None:
    data, _ = run_checked(tmp_path, "nested", NESTED_IN_FINALISERS)
    kinds = [f["kind"] for f in data["findings"]]
    assert kinds == ["race"], data["findings"]  # no lock-order inversion: none was made


MANY_THREADS = """
import resource, sys, threading
import fermion.check  # the same library loaded in the plain run and the checked one

lock = threading.Lock()
total = 0
racy = 0


def locked_bump():
    global total
    with lock:
        total += 1


def racy_bump():
    global racy
    racy += 1


# Two threads that race, then 4000 short ones, four at a time, each joined.
pair = [threading.Thread(target=racy_bump) for _ in range(2)]
for t in pair:
    t.start()
for t in pair:
    t.join()
for _ in range(1000):
    batch = [threading.Thread(target=locked_bump) for _ in range(4)]
    for t in batch:
        t.start()
    for t in batch:
        t.join()
assert total == 4000
print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def peak_kib(stderr: str) -> int:
    line = next(line for line in stderr.splitlines() if line.startswith("peak_kib "))
    return int(line.split()[1])


@pytest.mark.slow
def test_memory_follows_the_live_threads_and_the_race_is_still_found(tmp_path: Path) -> None:
    script = tmp_path / "many.py"
    script.write_text(MANY_THREADS)
    plain = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=90, check=True
    )
    data, checked_stderr = check_json(script, "--races")
    messages = race_messages(data)
    assert len(messages) == 1 and "data race on racy" in messages[0], messages
    # Quadratic before: every vector clock had an entry per thread ever started.
    assert peak_kib(checked_stderr) <= 2 * peak_kib(plain.stderr), (plain.stderr, checked_stderr)
