"""``fermion tour --notebook PATH``: the hands-on as a Jupyter notebook.

One part per tour section, in the tour's order: the section's title and explanation
(its module docstring), the exercise the report shows, and the code the tour runs for
it (the same program text: the notebook and the report cannot drift apart). Programs
that must run in a process of their own (the hung philosophers, the racing counters)
are written to a file with ``%%writefile`` and run under ``fermion check`` or
``fermion stress`` from a cell, with a timeout. Needs ``nbformat`` (the ``notebook``
extra) to write.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from fermion.errors import ExtraMissingError
from fermion.teach.tour._programs import COUNTERS, PHILOSOPHERS, RWLOCK_STARVATION

__all__ = ["notebook_cells", "write_notebook"]

_INTRO = """# fermion tour: the hands-on session

Run the cells in order (Shift-Enter). Each part is one section of `fermion tour`: what
the lecture says, the code the tour runs for it, and an exercise. Every number you see
is measured on your machine, now; if other programs keep its cores busy, the speedups
come out lower than the machine can give (`fermion.machine_load()` measures that).
"""

_MACHINE = """import os
import sys

import fermion

print(sys.version)
print(f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores")
with fermion.machine_load() as meter:
    sum(range(10_000_000))
print(meter.result.describe())
"""

_SCALING = """import time

import fermion
from fermion.teach import calibrate_primes, count_primes, wait

limit = calibrate_primes(0.05)  # about 50 ms of pure Python per call, here
for label, fn, items in (("CPU-bound", count_primes, [limit] * 8), ("I/O-bound", wait, [0.05] * 16)):
    for backend, workers in (("serial", 1), ("threads", 2), ("threads", 8), ("processes", 2)):
        with fermion.Executor(backend, workers) as executor:
            executor.submit(abs, -1).result()  # start the pool before the clock
            started = time.perf_counter()
            list(executor.map(fn, items))
            print(f"{label:<10} {backend:<10} x{workers}: {time.perf_counter() - started:.2f} s")
"""


def _run_cell(*commands: list[str]) -> str:
    lines = ["import subprocess", "import sys", ""]
    for command in commands:
        lines.append(
            f"done = subprocess.run([sys.executable, *{command!r}], capture_output=True, "
            "text=True, timeout=120)"
        )
        lines.append("print(done.stdout[-4000:] or done.stderr[-4000:])")
    return "\n".join(lines) + "\n"


def _write_cell(name: str, source: str) -> str:
    return f"%%writefile {name}\n{source}"


_SHARING = """import pickle
import time

import numpy as np

from fermion.sharing import shared_copy

array = np.random.default_rng(0).random(16 * 2**20 // 8)  # 16 MB
shared = shared_copy(array)
for label, value in (("numpy array", array), ("fermion SharedArray", shared)):
    started = time.perf_counter()
    size = len(pickle.dumps(value, protocol=5))
    print(f"{label:<20} pickles to {size:>10} bytes in {(time.perf_counter() - started) * 1e3:.2f} ms")
"""

_SUMMARY = """import fermion
from fermion.teach import calibrate_primes, count_primes, wait

for fn, items in ((count_primes, [calibrate_primes(0.02)] * 50), (wait, [0.02] * 50)):
    advice = fermion.advise(fn, items)
    print(f"{fn.__name__}: {advice.backend} x {advice.workers}, predicted {advice.speedup:.2f}x")
    for reason in advice.reasons:
        print("   ", reason)
"""


def _code_for(module: ModuleType) -> list[str]:
    """The code cells of one section."""
    key = module.KEY
    if key == "scaling":
        return [_SCALING]
    if key == "atomic":
        return [module.PROGRAM.format(times=10_000)]
    if key == "race":
        _, source = COUNTERS["unsafe_call_counter"]
        return [
            _write_cell("unsafe_call_counter.py", source),
            _run_cell(
                ["-m", "fermion", "stress", "--runs", "10", "unsafe_call_counter.py"],
                ["-m", "fermion", "check", "--races", "unsafe_call_counter.py"],
            ),
        ]
    if key == "deadlock":
        return [
            _write_cell("philosophers.py", PHILOSOPHERS),
            _run_cell(
                ["-m", "fermion", "check", "--deadlocks", "--timeout", "30", "philosophers.py"]
            ),
        ]
    if key == "starvation":
        return [
            _write_cell("rwlock_starvation.py", RWLOCK_STARVATION),
            _run_cell(["rwlock_starvation.py"]),
        ]
    if key == "sharing":
        return [_SHARING]
    if key == "summary":
        return [_SUMMARY]
    program = getattr(module, "PROGRAM", None)
    if program is None:
        raise LookupError(f"the notebook has no code for the tour section {key!r}")
    return [program]


def notebook_cells() -> list[tuple[str, str]]:
    """Every cell of the notebook as (``"markdown"`` or ``"code"``, source)."""
    from fermion.teach.tour._runner import SECTIONS

    cells: list[tuple[str, str]] = [("markdown", _INTRO), ("code", _MACHINE)]
    for number, module in enumerate(SECTIONS, 1):
        explanation = inspect.cleandoc(module.__doc__ or "")
        explanation = re.sub(r"^Section[^:]*:[^\n.]*\.\s*", "", explanation)
        cells.append(
            (
                "markdown",
                f"## {number}. {module.TITLE}\n\n{explanation}\n\n**Exercise.** {module.EXERCISE}\n",
            )
        )
        cells.extend(("code", source) for source in _code_for(module))
    return cells


def write_notebook(path: str | Path) -> Path:
    """Write the notebook to ``path`` (nbformat 4) and return the path."""
    try:
        import nbformat
        from nbformat import v4
    except ImportError as error:
        raise ExtraMissingError.for_feature(
            "fermion tour --notebook", "notebook", "nbformat"
        ) from error
    book: Any = v4.new_notebook()
    book.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    book.metadata["language_info"] = {"name": "python"}
    for kind, source in notebook_cells():
        cell = v4.new_markdown_cell(source) if kind == "markdown" else v4.new_code_cell(source)
        book.cells.append(cell)
    nbformat.validate(book)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, str(target))
    return target
