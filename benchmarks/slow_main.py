"""A script whose main module takes 0.7 s to import, as real scripts' do (a table
built, files read): every worker process of a process pool imports it again.

Run by ``workloads.run_script``:  python slow_main.py BACKEND WORKERS ITEMS_JSON
Prints one JSON line: the seconds of the job (Executor created to shut down) and the
choice of ``auto``.
"""

from __future__ import annotations

import json
import sys
import time

from workloads import spin

#: The setup at import: pure Python for 0.7 s (a worker pays it again).
_TABLE_UNTIL = time.perf_counter() + 0.7
TABLE = []
while time.perf_counter() < _TABLE_UNTIL:
    TABLE.append(len(TABLE) % 7)


def job(iterations: int) -> int:
    return spin(iterations)


def main() -> None:
    from fermion import Executor

    backend, workers, items = sys.argv[1], int(sys.argv[2]) or None, json.loads(sys.argv[3])
    started = time.perf_counter()
    with Executor(backend, workers) as executor:
        for _ in executor.map(job, items):
            pass
    seconds = time.perf_counter() - started
    choice = getattr(executor.backend, "choice", None)
    text = "" if backend != "auto" else _choice_text(choice)
    print(json.dumps({"seconds": seconds, "choice": text}))


def _choice_text(choice: object) -> str:
    if choice is None:
        return "still measuring"
    text = f"{choice.backend} x{choice.workers}"  # type: ignore[attr-defined]
    if not choice.handed_over:  # type: ignore[attr-defined]
        text += " (ran here)"
    if choice.busy:  # type: ignore[attr-defined]
        text += " [busy]"
    return text


if __name__ == "__main__":
    main()
