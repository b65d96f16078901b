"""The small programs the tour runs and checks, written into the report folder so that
the reader can run them again by hand (``fermion check --races programs/...``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

__all__ = [
    "COUNTERS",
    "PHILOSOPHERS",
    "PHILOSOPHERS_ORDERED",
    "RWLOCK_STARVATION",
    "load_program",
    "run_check",
    "write_program",
]

_COUNTER_MAIN = """

if __name__ == "__main__":
    threads = [threading.Thread(target=increment, args=(TIMES,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"counter = {counter} (expected {4 * TIMES})")
    if counter != 4 * TIMES:
        raise SystemExit(f"lost {4 * TIMES - counter} updates")
"""

#: name -> (the update, the program's source). Each defines ``increment(times)``.
COUNTERS: dict[str, tuple[str, str]] = {
    "unsafe_counter": (
        "counter += 1",
        '"""The lecture\'s unsafe counter: four threads, one global, no lock."""\n\n'
        "import threading\n\ncounter = 0\nTIMES = 20_000\n\n\n"
        "def increment(times):\n    global counter\n    for _ in range(times):\n"
        "        counter += 1\n" + _COUNTER_MAIN,
    ),
    "unsafe_call_counter": (
        "counter = add_one(counter)",
        '"""The same race with a call between the read and the write (as real code has)."""\n\n'
        "import threading\n\ncounter = 0\nTIMES = 20_000\n\n\n"
        "def add_one(value):\n    return value + 1\n\n\n"
        "def increment(times):\n    global counter\n    for _ in range(times):\n"
        "        counter = add_one(counter)\n" + _COUNTER_MAIN,
    ),
    "locked_counter": (
        "with lock: counter += 1",
        '"""The fix: every update under one lock."""\n\n'
        "import threading\n\ncounter = 0\nTIMES = 20_000\nlock = threading.Lock()\n\n\n"
        "def increment(times):\n    global counter\n    for _ in range(times):\n"
        "        with lock:\n            counter += 1\n" + _COUNTER_MAIN,
    ),
}

_PHILOSOPHERS_MAIN = """

if __name__ == "__main__":
    threads = [
        threading.Thread(target=philosopher, args=(i,), name=f"philosopher-{i}")
        for i in range(N)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("everyone ate")
"""

PHILOSOPHERS = (
    '"""Dining philosophers: each takes the left fork, then the right one."""\n\n'
    "import threading\n\nN = 5\nforks = [threading.Lock() for _ in range(N)]\n"
    "all_seated = threading.Barrier(N)\n\n\n"
    "def philosopher(i):\n"
    "    left, right = forks[i], forks[(i + 1) % N]\n"
    "    with left:\n"
    "        all_seated.wait()  # everyone holds a left fork: the classic bad moment\n"
    "        with right:\n"
    '            print(f"philosopher {i} eats")\n' + _PHILOSOPHERS_MAIN
)

PHILOSOPHERS_ORDERED = (
    '"""The fix: every philosopher takes the lower-numbered fork first (one global order)."""\n\n'
    "import threading\n\nN = 5\nforks = [threading.Lock() for _ in range(N)]\n\n\n"
    "def philosopher(i):\n"
    "    first, second = sorted((i, (i + 1) % N))\n"
    "    with forks[first]:\n"
    "        with forks[second]:\n"
    '            print(f"philosopher {i} eats")\n' + _PHILOSOPHERS_MAIN
)


def write_program(folder: Path, name: str, source: str) -> Path:
    """Write ``source`` as ``folder/name.py`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return path


def run_check(
    python: str, flags: list[str], script: Path, *, timeout: float
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run ``fermion check FLAGS --format json SCRIPT`` in a child process.

    Returns the JSON report and the finished process. The child's own ``--timeout``
    ends a program that hangs; ``timeout`` (longer) guards against the checker itself
    hanging. Raises RuntimeError when no report came back.
    """
    report_path = script.with_suffix(".check.json")
    command = [
        python,
        "-m",
        "fermion",
        "check",
        *flags,
        "--format",
        "json",
        "--output",
        str(report_path),
        "--timeout",
        f"{timeout:g}",
        str(script),
    ]
    report_path.unlink(missing_ok=True)
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        cwd=script.parent,
        check=False,
    )
    if not report_path.exists():
        raise RuntimeError(
            f"`fermion check {' '.join(flags)} {script.name}` wrote no report "
            f"(exit status {done.returncode}); its stderr ends with: {done.stderr[-500:]!r}"
        )
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise RuntimeError(
            f"the report of `fermion check {' '.join(flags)} {script.name}` in {report_path} "
            f"is not JSON ({error})"
        ) from None
    return report, done


RWLOCK_STARVATION = '''"""A writer starved by a readers-first RWLock: readers overlap for 1.6 s, and the
writer, which asked for the lock at the start, gets in only when they stop."""

import threading
import time

from fermion.sync import RWLock

lock = RWLock("readers")
stop = threading.Event()


def reader():
    while not stop.is_set():
        with lock.read():
            time.sleep(0.002)


def writer():
    asked = time.perf_counter()
    with lock.write():
        print(f"writer got in after {time.perf_counter() - asked:.2f} s")


if __name__ == "__main__":
    readers = [threading.Thread(target=reader, name=f"reader-{i}") for i in range(4)]
    for thread in readers:
        thread.start()
    time.sleep(0.05)
    waiting = threading.Thread(target=writer, name="writer")
    waiting.start()
    time.sleep(1.6)
    stop.set()
    waiting.join()
    for thread in readers:
        thread.join()
'''


def load_program(folder: Path, name: str, source: str) -> dict[str, Any]:
    """Write ``source`` as ``folder/name.py`` and run it (not as ``__main__``) in a fresh
    namespace, which is returned: the functions a section then calls are the very code
    the report shows and the reader can run again (``python programs/NAME.py``)."""
    path = write_program(folder, name, source)
    namespace: dict[str, Any] = {"__name__": f"fermion_tour_{name}", "__file__": str(path)}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace
