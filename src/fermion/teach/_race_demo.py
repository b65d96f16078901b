"""``fermion demo race``: the lecture's two counters, stress-tested and race-checked.

Three versions of one program — the lecture's bare ``counter += 1``, the same update
with one Python call between the read and the write, and the locked fix — each run
under ``fermion stress`` (how often does it lose updates?) and under the race detector
(is it a race?), side by side. On a GIL build the bare version rarely or never loses
an update, yet the detector reports it: that is the point.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import sys
import tempfile

import click

from fermion.check._report import Finding, Report
from fermion.teach._stress import StressResult, free_threaded, stress
from fermion.teach.tour._programs import COUNTERS
from fermion.teach.tour._race import counter_trial, program_times

__all__ = ["race_demo"]


def _detect(path: str) -> list[Finding]:
    from fermion.check._races import session

    handle = session.start(path, [])
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(path, run_name="__main__")
    except SystemExit:
        pass  # an unsafe counter exits with "lost N updates": the race is the finding
    finally:
        findings = handle.stop()
    return findings


def _row(name: str, label: str, result: StressResult, findings: list[Finding]) -> str:
    lost = result.lost_fraction
    stress_text = f"{result.failures}/{result.runs} runs lost updates" + (
        f" ({lost:.1%} lost)" if lost is not None else ""
    )
    if findings:
        where = ", ".join(sorted({f"line {loc.line}" for f in findings for loc in f.locations}))
        verdict = f"RACE ({where})"
    else:
        verdict = "no race"
    return f"{name:<20} {label:<28} {stress_text:<40} {verdict}"


@click.command("race")
@click.option(
    "--runs",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Stress runs per program.",
)
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(min=2),
    help="Threads per stress run.",
)
def race_demo(runs: int, threads: int) -> None:
    """The lecture's unsafe and locked counters: stress result and race report side by side."""
    build = "free-threaded (GIL off)" if free_threaded() else "with the GIL"
    times = program_times()
    click.echo(
        f"Python {sys.version_info.major}.{sys.version_info.minor} {build}; stress: {runs} runs x "
        f"{threads} threads x {times} increments, switch interval 1e-06 s\n"
    )
    click.echo(f"{'program':<20} {'update':<28} {'stress':<40} race detector")
    reports: list[tuple[str, str, list[Finding]]] = []
    with tempfile.TemporaryDirectory(prefix="fermion-demo-race-") as tmp:
        for name, (label, source) in COUNTERS.items():
            path = os.path.join(tmp, f"{name}.py")
            with open(path, "w", encoding="utf-8") as f:
                f.write(source)
            result = stress(counter_trial(source, path), runs=runs, threads=threads)
            findings = _detect(path)
            click.echo(_row(name, label, result, findings))
            reports.append((name, source, findings))
    click.echo(
        "\nOn a GIL build the bare `counter += 1` rarely or never loses an update (the "
        "interpreter does not switch threads between its load and store), one call in "
        "between loses many, and on free-threaded 3.13t both lose. The detector does not "
        "wait for bad luck: it reports both unsafe versions every time."
    )
    for name, source, findings in reports:
        click.echo(f"\n--- {name}.py ---")
        for number, line in enumerate(source.splitlines(), 1):
            click.echo(f"{number:3} | {line}")
        click.echo(Report(findings).to_text().rstrip())
