"""Section: atomic operations. What CPython does in one indivisible step and what it
does not: ``x += 1`` is a load, an add and a store (the bytecode shows them), which
another thread can come between; ``list.append`` is one call into C, done whole under
the GIL (and under the list's own lock on free-threaded builds);
``fermion.sync.AtomicInt`` makes a read-modify-write one step on every build. Each is
stress-tested from four threads.
"""

from __future__ import annotations

import dis
import threading
from collections.abc import Callable
from typing import Any

import fermion
from fermion.teach.tour._machine import free_threaded
from fermion.teach.tour._programs import write_program
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["PROGRAM", "run"]

KEY = "atomic"
TITLE = "Atomic operations: what CPython does in one step, and what it does not"
EXERCISE = "Add a fifth function that does `items[0] += 1` on a one-item list. Is it atomic? Read its bytecode with dis.dis before you stress it."

PROGRAM = '''"""Four threads update shared state TIMES times each, four ways."""

import threading

from fermion.sync import AtomicInt

TIMES = {times}

counter = 0
box = {{"n": 0}}
items = []
atomic = AtomicInt(0)


def add_to_global():
    global counter
    for _ in range(TIMES):
        counter += 1  # load, add, store: three steps


def add_to_dict():
    for _ in range(TIMES):
        box["n"] += 1  # load the item, add, store the item


def append_to_list():
    for _ in range(TIMES):
        items.append(1)  # one call into C


def add_atomic():
    for _ in range(TIMES):
        atomic.increment_and_get()  # one atomic read-modify-write


def results():
    return {{
        "add_to_global": counter,
        "add_to_dict": box["n"],
        "append_to_list": len(items),
        "add_atomic": atomic.get(),
    }}


if __name__ == "__main__":
    for work in (add_to_global, add_to_dict, append_to_list, add_atomic):
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for name, value in results().items():
        print(f"{{name}}: {{value}} of {{4 * TIMES}}")
'''

#: function name -> the statement it repeats.
OPERATIONS = {
    "add_to_global": "counter += 1",
    "add_to_dict": 'box["n"] += 1',
    "append_to_list": "items.append(1)",
    "add_atomic": "atomic.increment_and_get()",
}


def _trial(code: Any, name: str) -> Callable[[int], tuple[int, int]]:
    """A ``fermion.stress`` trial: a fresh copy of the program, ``threads`` threads
    running its function ``name`` released together; (result, expected)."""

    def trial(threads: int) -> tuple[int, int]:
        namespace: dict[str, Any] = {"__name__": "fermion_tour_atomic"}
        exec(code, namespace)
        work = namespace[name]
        start = threading.Barrier(threads)

        def go() -> None:
            start.wait(timeout=30)
            work()

        workers = [threading.Thread(target=go) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        if any(worker.is_alive() for worker in workers):
            raise RuntimeError(f"a thread running {name} did not finish within 60 s")
        return namespace["results"]()[name], threads * namespace["TIMES"]

    return trial


def _bytecode(function: Any, statement_line: int) -> str:
    """The instructions of one source line of ``function``."""
    return "\n".join(
        f"    {ins.opname:<22} {ins.argrepr}"
        for ins in dis.get_instructions(function)
        if ins.positions is not None and ins.positions.lineno == statement_line
    )


def run(ctx: TourContext, section: SectionResult) -> None:
    """Show the bytecode of ``+=`` and stress each operation from four threads."""
    times, runs, threads = (5_000, 3, 4) if ctx.quick else (10_000, 5, 4)
    source = PROGRAM.format(times=times)
    path = write_program(ctx.out / "programs", "atomic_operations", source)
    code = compile(source, str(path), "exec")
    namespace: dict[str, Any] = {"__name__": "fermion_tour_atomic"}
    exec(code, namespace)
    section.code(source, path)
    line = next(n for n, text in enumerate(source.splitlines(), 1) if "counter += 1" in text)
    section.say(
        f"`counter += 1` (line {line}) is these instructions; a thread can lose the GIL, "
        "or run truly in parallel, between the load and the store:"
    )
    section.show(_bytecode(namespace["add_to_global"], line))
    build = "free-threaded, GIL off" if free_threaded() else "with the GIL"
    section.say(
        f"fermion.stress runs each function {runs} times in {threads} threads x {times} "
        f"updates (switch interval 1 µs; Python {build}):"
    )
    rows = [f"{'operation':<30} {'runs that lost updates':>22} {'updates lost':>13}"]
    results: dict[str, Any] = {}
    for name, statement in OPERATIONS.items():
        ctx.progress(f"stress {statement}")
        try:
            outcome = fermion.stress(_trial(code, name), runs=runs, threads=threads)
        except Exception as error:
            section.fail(f"stress of {statement}", error)
            continue
        lost = outcome.lost_fraction or 0.0
        results[name] = {"failures": outcome.failures, "runs": outcome.runs, "lost": lost}
        rows.append(f"{statement:<30} {f'{outcome.failures}/{outcome.runs}':>22} {lost:>12.2%}")
    section.show("\n".join(rows))
    section.data.update({"times": times, "runs": runs, "threads": threads, "results": results})
    unsafe = [
        OPERATIONS[n]
        for n in ("add_to_global", "add_to_dict")
        if results.get(n, {}).get("failures")
    ]
    safe_ok = all(results.get(n, {}).get("failures") == 0 for n in ("append_to_list", "add_atomic"))
    if unsafe:
        seen = f"{' and '.join(unsafe)} lost updates in this run"
    else:
        seen = (
            "neither += lost an update in this run: with the GIL, CPython switches threads "
            "only at a few instructions (calls, loop jumps), never between this load and "
            "store, which is luck of the implementation, not a promise (section 'The race' "
            "puts one call in between and loses updates; on free-threaded 3.13t += loses "
            "them as it is)"
        )
    section.say(
        f"Here {seen}. items.append and AtomicInt.increment_and_get "
        f"{'lost none' if safe_ok else 'LOST UPDATES (unexpected: please report it)'}: "
        "one call into C is done whole, under the GIL or, without it, under the object's own "
        "lock. Rule of thumb: one call on a built-in container is atomic; a statement that "
        "reads, computes and writes back is not; use a lock or an atomic type for those."
    )
