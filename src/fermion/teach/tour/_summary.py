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


@dataclass(frozen=True)
class _Case:
    label: str
    fn: Callable[[Any], Any]
    items: list[Any]


def _cases(quick: bool, measured_limit: int | None) -> list[_Case]:
    limit = measured_limit or _workloads.calibrate_primes(0.05)
    big = np.random.default_rng(6).random(2**20 if quick else 4 * 2**20)
    return [
        _Case("CPU-bound Python (count_primes)", _workloads.count_primes, [limit] * 200),
        _Case("I/O-bound (wait 50 ms)", _workloads.wait, [0.05] * 200),
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
    section.data["advice"] = choices
    if choices:
        section.show("\n".join(rows))
        section.say("Why:")
        section.show("\n".join(_wrap(reason) for reason in reasons))
    if measured:
        best = _measured_best(measured)
        if best:
            section.say("Measured in section 1: " + "; ".join(best) + ".")
    section.say(
        'Executor("auto") makes this choice on the fly from the first calls it runs: '
        'fermion.map(fn, items) with no backend named, or fermion.Executor("auto").'
    )


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
