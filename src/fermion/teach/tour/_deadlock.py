"""Section 3: deadlock. The dining philosophers hang under plain threading; under
``fermion check`` the same unmodified program ends with a report of the cycle (who
holds which fork, taken where, and waits for which, where); the fixed program, which
takes forks in one global order, passes the same check.

Every run is a child process with a timeout, so the tour itself can never hang.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from fermion.teach.tour._programs import (
    PHILOSOPHERS,
    PHILOSOPHERS_ORDERED,
    run_check,
    write_program,
)
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["run"]

KEY = "deadlock"
TITLE = "Deadlock: the dining philosophers, reported instead of hung"
EXERCISE = "Run `fermion check --deadlocks programs/philosophers.py`, read the cycle, then change the program so that one philosopher takes the right fork first: does the check pass?"

#: The checked run ends a hung program after this many seconds at the latest.
CHECK_TIMEOUT = 30.0


def run(ctx: TourContext, section: SectionResult) -> None:
    """Hang the plain program (killed after a moment), then check it, then check the fix."""
    folder = ctx.out / "programs"
    script = write_program(folder, "philosophers", PHILOSOPHERS)
    fixed = write_program(folder, "philosophers_ordered", PHILOSOPHERS_ORDERED)
    hang_seconds = 1.0 if ctx.quick else 2.0
    section.say(
        "Five philosophers, five forks; each takes the left fork, waits until all are "
        "seated, then reaches for the right one."
    )
    ctx.progress(f"python {script.name} (plain threading, killed after {hang_seconds:g} s)")
    try:
        done = subprocess.run(
            [ctx.python, str(script)],
            capture_output=True,
            text=True,
            timeout=hang_seconds,
            check=False,
        )
        section.say(
            f"1. Plain threading: it finished (exit status {done.returncode}); the scheduler "
            "was kind this time."
        )
        section.data["plain_hung"] = False
    except subprocess.TimeoutExpired:
        section.say(
            f"1. Plain threading: no output after {hang_seconds:g} s, every philosopher holds "
            "one fork and waits for the next. It would hang forever; the tour killed it."
        )
        section.data["plain_hung"] = True
    except Exception as error:
        section.fail("the plain run", error)

    ctx.progress(f"fermion check --deadlocks {script.name}")
    try:
        started = time.perf_counter()
        report, _ = run_check(
            ctx.python, ["--deadlocks", "--lock-order"], script, timeout=CHECK_TIMEOUT
        )
        seconds = time.perf_counter() - started
        deadlocks = [f for f in report.get("findings", []) if f.get("kind") == "deadlock"]
        section.data["checked_seconds"] = seconds
        section.data["deadlocks"] = len(deadlocks)
        if deadlocks:
            section.say(
                f"2. The same program under `fermion check --deadlocks`: reported in "
                f"{seconds:.1f} s (including starting Python), with the cycle:"
            )
            section.show(_shorten(str(deadlocks[0].get("message", "")), str(script.parent)))
            section.data["cycle_threads"] = sorted(
                {str(loc.get("thread")) for loc in deadlocks[0].get("locations", [])}
            )
        else:
            section.fail(
                "the deadlock check",
                f"`fermion check --deadlocks {script.name}` reported no deadlock "
                f"(findings: {_kinds(report)})",
            )
    except Exception as error:
        section.fail("the deadlock check", error)

    ctx.progress(f"fermion check --deadlocks {fixed.name}")
    try:
        report, done = run_check(
            ctx.python, ["--deadlocks", "--lock-order"], fixed, timeout=CHECK_TIMEOUT
        )
        findings = report.get("findings", [])
        section.data["fixed_findings"] = len(findings)
        if findings:
            section.say(f"3. The fixed program still has findings: {_kinds(report)}.")
        else:
            section.say(
                "3. The fix, every philosopher taking the lower-numbered fork first (one "
                f"global order): no finding, everyone ate (exit status {done.returncode})."
            )
    except Exception as error:
        section.fail("the check of the fixed program", error)
    section.say(f"Try it: fermion check {script}   or   fermion demo deadlock")


def _kinds(report: dict[str, Any]) -> str:
    kinds = [str(f.get("kind")) for f in report.get("findings", [])]
    return ", ".join(kinds) or "none"


def _shorten(message: str, folder: str) -> str:
    """The report with the programs' folder left out of every path, to keep lines short."""
    return message.replace(folder.rstrip("/") + "/", "")
