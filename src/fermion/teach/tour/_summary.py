"""Section 6: the summary. ``fermion.advise`` profiles one call of each workload
(wall and CPU time, GIL, pickling cost, process start-up) and recommends a backend,
a worker count and a chunk size, with its reasons; ``fermion.Executor("auto")`` makes
the same kind of choice on the fly. Set against what section 1 measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import fermion
from fermion.teach import _workloads
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["run"]

KEY = "summary"
TITLE = "Summary: which backend fermion.advise picks, and why"
EXERCISE = "Ask fermion.advise about a function of your own, then run it with fermion.map(fn, items) (auto) and with the backend advise picked: do they agree?"


@dataclass(frozen=True)
class _Case:
    label: str
    fn: Callable[[Any], Any]
    items: list[Any]
    measured_key: str | None = None  # the workload of section 1 it matches


def _cases(quick: bool, measured_limit: int | None) -> list[_Case]:
    limit = measured_limit or _workloads.calibrate_primes(0.05)
    big = np.random.default_rng(6).random(2**20 if quick else 4 * 2**20)
    return [
        _Case("CPU-bound Python (count_primes)", _workloads.count_primes, [limit] * 200, "cpu"),
        _Case("I/O-bound (wait 50 ms)", _workloads.wait, [0.05] * 200, "io"),
        _Case(f"NumPy sum of {big.nbytes / 1e6:.0f} MB arrays", _workloads.array_sum, [big] * 200),
        _Case("tiny calls (2x+1)", _workloads.tiny, list(range(10_000))),
    ]


def run(ctx: TourContext, section: SectionResult, measured: dict[str, Any] | None = None) -> None:
    """Ask ``fermion.advise`` about each workload and tabulate its choices and reasons.

    ``measured`` holds section 1's results (``data`` of the scaling section), to set
    the advice against the measured best."""
    limit = measured.get("cpu_limit") if measured else None
    rows = [f"{'workload (200 items; 10000 tiny)':<34} {'advise picks':<26} {'predicted':>9}"]
    reasons: list[str] = []
    choices: dict[str, Any] = {}
    comparisons: list[str] = []
    for case in _cases(ctx.quick, limit):
        ctx.progress(f"fermion.advise: {case.label}")
        try:
            advice = fermion.advise(case.fn, case.items)
        except Exception as error:
            section.fail(f"fermion.advise on {case.label}", error)
            continue
        pick = f"{advice.backend}, {advice.workers} worker{'s' if advice.workers != 1 else ''}"
        rows.append(f"{case.label:<34} {pick:<26} {advice.speedup:>8.2f}x")
        reasons.append(f"{case.label}: " + "; ".join(advice.reasons))
        choices[case.label] = {
            "backend": advice.backend,
            "workers": advice.workers,
            "chunksize": advice.chunksize,
            "predicted_speedup": advice.speedup,
            "reasons": list(advice.reasons),
        }
        if measured and case.measured_key:
            line = _compare(case.label, advice, case.measured_key, measured)
            if line:
                comparisons.append(line)
                choices[case.label]["against_measured"] = line
    section.data["advice"] = choices
    if choices:
        section.show("\n".join(rows))
        section.say("Why:")
        section.show("\n".join(_wrap(reason) for reason in reasons))
    if measured:
        best = _measured_best(measured)
        if best:
            section.say("Measured in section 1: " + "; ".join(best) + ".")
        if comparisons:
            section.say("Predicted against measured:")
            section.show("\n".join(_wrap(line) for line in comparisons))
    section.say(
        'Executor("auto") makes this choice on the fly from the first calls it runs: '
        'fermion.map(fn, items) with no backend named, or fermion.Executor("auto").'
    )


#: A prediction within this factor of the measurement counts as agreeing.
AGREES = 1.2


def _compare(label: str, advice: Any, key: str, measured: dict[str, Any]) -> str | None:
    """One line setting advise's predicted speedup against what section 1 measured on the
    same backend and worker count, and why they differ."""
    runs = [
        r
        for r in measured.get("runs", [])
        if r["workload"] == key and r["backend"] == advice.backend
    ]
    if not runs:
        return None
    run = min(runs, key=lambda r: abs(r["workers"] - advice.workers))
    predicted, got = advice.speedup, run["speedup"]
    head = (
        f"{label}: advise predicted {predicted:.2f}x on {advice.backend} x {advice.workers}, "
        f"section 1 measured {got:.2f}x on {run['backend']} x {run['workers']}"
    )
    if advice.backend == "serial":
        return None
    if run["workers"] != advice.workers:
        return f"{head}: section 1 did not try {advice.workers} workers, so the two do not compare."
    load = measured.get("load")
    cores = load.cores if load is not None else "the"
    others = float(run.get("others", 0.0))
    ratio = predicted / got if got > 0 else float("inf")
    if 1 / AGREES <= ratio <= AGREES:
        return f"{head}: they agree."
    if ratio > AGREES and run.get("busy"):
        return (
            f"{head}: other programs used {others:.1f} of {cores} cores while it ran, and the "
            "prediction is for this machine with its cores free; run the tour on a quiet "
            "machine to see the predicted speedup."
        )
    if ratio > AGREES:
        return (
            f"{head}: other programs used only {others:.1f} of {cores} cores while it ran, so "
            "this is the cost model's error: it predicts "
            "from one profiled call, and misjudged this workload here by "
            f"{ratio:.2f}x."
        )
    return f"{head}: better than predicted (the model is cautious here, by {1 / ratio:.2f}x)."


def _measured_best(measured: dict[str, Any]) -> list[str]:
    out = []
    names = {"cpu": "CPU-bound", "io": "I/O-bound"}
    for key, name in names.items():
        runs = [r for r in measured.get("runs", []) if r["workload"] == key]
        if runs:
            top = max(runs, key=lambda r: r["speedup"])
            out.append(
                f"{name} ran fastest on {top['backend']} with {top['workers']} "
                f"worker{'s' if top['workers'] != 1 else ''} ({top['speedup']:.2f}x)"
            )
    return out


def _wrap(text: str, width: int = 100) -> str:
    words = text.split()
    lines: list[str] = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "    " + word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return "\n".join(lines)
