"""Section 2: the race. The lecture's unsafe counter, a variant, and the locked fix.

Each program is stress-tested (``fermion.stress``: many runs under a tiny switch
interval, counting lost updates) and checked (``fermion check --races``, in a child
process: the report names the racing line). Stress shows what happened this time; the
detector shows what can happen, whether or not it struck.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fermion
from fermion.teach.tour._machine import free_threaded
from fermion.teach.tour._programs import COUNTERS, run_check, write_program
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["counter_trial", "program_times", "run"]

KEY = "race"
TITLE = "The race: an unsafe counter and a locked one"
EXERCISE = "Run `fermion stress programs/unsafe_call_counter.py` and `fermion check --races programs/unsafe_counter.py`; then fix unsafe_call_counter.py with a lock and check it again."


def counter_trial(
    source: str, filename: str, times: int | None = None
) -> Callable[[int], tuple[int, int]]:
    """A ``fermion.stress`` trial: run the program's ``increment(times)`` in ``threads``
    threads released together, and return (final counter, expected counter).

    ``times`` None means the program's own ``TIMES``: the stress runs what the reader
    sees in the listing."""
    code = compile(source, filename, "exec")

    def trial(threads: int) -> tuple[int, int]:
        namespace: dict[str, Any] = {"__name__": "fermion_tour_trial"}
        exec(code, namespace)  # fresh globals: counter = 0
        increment = namespace["increment"]
        count = int(namespace["TIMES"]) if times is None else times
        start = threading.Barrier(threads)

        def work() -> None:
            start.wait(timeout=30)
            increment(count)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        if any(worker.is_alive() for worker in workers):
            raise RuntimeError("a counter thread did not finish within 60 s")
        return namespace["counter"], threads * count

    return trial


def program_times() -> int:
    """The ``TIMES`` every counter program defines (one value; the stress uses it)."""
    values = set()
    for _, source in COUNTERS.values():
        namespace: dict[str, Any] = {"__name__": "fermion_tour_times"}
        exec(compile(source, "<counter>", "exec"), namespace)
        values.add(int(namespace["TIMES"]))
    if len(values) != 1:
        raise RuntimeError(f"the counter programs disagree on TIMES: {sorted(values)}")
    return values.pop()


def _listing(source: str, lines: set[int]) -> str:
    return "\n".join(
        f"{'>>' if number in lines else '  '} {number:3} | {text}"
        for number, text in enumerate(source.splitlines(), 1)
    )


def run(ctx: TourContext, section: SectionResult) -> None:
    """Stress and race-check each counter program."""
    runs, threads = (5, 4) if ctx.quick else (20, 4)
    times = program_times()
    build = (
        "free-threaded: threads really run at once, so lost updates are real"
        if free_threaded()
        else "with the GIL"
    )
    section.say(
        f"Four threads add 1 to a shared counter. fermion.stress runs each program {runs} "
        f"times ({threads} threads x {times} updates, switch interval 1 µs; Python {build}); "
        "`fermion check --races` runs it once under the race detector."
    )
    folder = ctx.out / "programs"
    rows = [f"{'program':<22} {'update':<28} {'stress: runs that lost updates':<34} race detector"]
    listings: list[tuple[str, str, set[int], list[str]]] = []
    results: dict[str, Any] = {}
    for name, (update, source) in COUNTERS.items():
        path = write_program(folder, name, source)
        stress_text = "-"
        ctx.progress(f"stress {name}")
        try:
            outcome = fermion.stress(counter_trial(source, str(path)), runs=runs, threads=threads)
            lost = outcome.lost_fraction or 0.0
            stress_text = f"{outcome.failures}/{outcome.runs} ({lost:.2%} of updates lost)"
            results[name] = {"failures": outcome.failures, "runs": outcome.runs, "lost": lost}
        except Exception as error:
            section.fail(f"stress of {name}", error)
        verdict = "-"
        ctx.progress(f"fermion check --races {name}.py")
        try:
            verdict, lines, messages = _detect(ctx, path)
            listings.append((name, source, lines, messages))
            results.setdefault(name, {})["race_lines"] = sorted(lines)
        except Exception as error:
            section.fail(f"race check of {name}", error)
        rows.append(f"{name:<22} {update:<28} {stress_text:<34} {verdict}")
    section.show("\n".join(rows))
    section.data["programs"] = results
    section.data.update({"runs": runs, "threads": threads, "times": times})
    section.say(
        "On a GIL build the bare `counter += 1` seldom or never loses an update (CPython "
        "does not switch threads between its load and its store), a call in between loses "
        "many, and on free-threaded 3.13t both lose. The race detector does not wait for bad "
        "luck: it reports both unsafe programs every time, and the locked one never."
    )
    for name, source, lines, messages in listings:
        if not lines:
            continue
        section.say(f"{name}.py, with the lines the detector names marked >>:")
        section.show(_listing(source, lines))
        for message in messages[:1]:
            section.show(message)
    section.say(
        f"Try it: fermion check --races {folder / 'unsafe_counter.py'}   and   "
        f"fermion stress {folder / 'unsafe_call_counter.py'}"
    )


def _detect(ctx: TourContext, path: Path) -> tuple[str, set[int], list[str]]:
    """Run the race detector on ``path``: (verdict, racing lines, messages)."""
    report, done = run_check(ctx.python, ["--races"], path, timeout=60)
    races = [f for f in report.get("findings", []) if f.get("kind") == "race"]
    if not races:
        if done.returncode not in (0,):
            raise RuntimeError(
                f"fermion check --races exited with status {done.returncode} and no finding; "
                f"stderr ends with: {done.stderr[-300:]!r}"
            )
        return "no race", set(), []
    lines = {
        int(location["line"])
        for finding in races
        for location in finding.get("locations", [])
        if Path(location.get("file", "")).name == path.name
    }
    where = ", ".join(f"line {n}" for n in sorted(lines)) or "no line in the program"
    return f"RACE at {where}", lines, [str(f.get("message", "")) for f in races]
