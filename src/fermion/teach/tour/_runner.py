"""Run the tour's sections in order, each on its own: a section that fails is reported
as failed (with what it measured before the failure) and the next one runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from fermion.measure import CpuSample, MachineLoad, cpu_sample
from fermion.teach.tour import (
    _atomic,
    _corruption,
    _deadlock,
    _killable,
    _mutex,
    _overhead,
    _queue,
    _race,
    _scaling,
    _sharing,
    _starvation,
    _summary,
    _switch,
)
from fermion.teach.tour._html import write_html
from fermion.teach.tour._machine import describe
from fermion.teach.tour._plots import plotting_available
from fermion.teach.tour._section import PLOT_EXTRA_HINT, SectionResult, TourContext

__all__ = ["SECTIONS", "TourReport", "run_tour"]

#: The sections in the order the tour runs them.
SECTIONS: tuple[ModuleType, ...] = (
    _scaling,
    _switch,
    _overhead,
    _race,
    _atomic,
    _corruption,
    _mutex,
    _queue,
    _deadlock,
    _starvation,
    _killable,
    _sharing,
    _summary,
)


@dataclass
class TourReport:
    """Everything one tour run produced; ``index.html`` and ``tour.json`` render it."""

    out: Path
    quick: bool
    machine: str
    started: str
    sections: list[SectionResult] = field(default_factory=list)
    seconds: float = 0.0
    plots: bool = True
    #: What other programs took of the cores during the whole tour.
    load: MachineLoad | None = None

    @property
    def ok(self) -> bool:
        return all(section.ok for section in self.sections)

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "started": self.started,
            "quick": self.quick,
            "seconds": self.seconds,
            "plots": self.plots,
            "load": None if self.load is None else self.load.to_dict(),
            "sections": [
                {
                    "key": s.key,
                    "title": s.title,
                    "ok": s.ok,
                    "seconds": s.seconds,
                    "failures": s.failures,
                    "notes": s.notes,
                    "images": [i.file for i in s.images],
                    "text": [b.text for b in s.blocks],
                    "data": s.data,
                    "load": None if s.load is None else s.load.to_dict(),
                    "busy_notice": s.busy_notice,
                }
                for s in self.sections
            ],
        }


def _section_names() -> list[str]:
    return [module.KEY for module in SECTIONS]


def run_tour(
    out: str | Path = "fermion-tour",
    *,
    quick: bool = False,
    only: Sequence[str] = (),
    echo: Callable[[str], None] = print,
    load_sampler: Callable[[], CpuSample] = cpu_sample,
) -> TourReport:
    """Run the tour (or the sections named in ``only``) and write the report to ``out``:
    ``index.html`` with the PNG plots, ``tour.txt`` (what the terminal showed),
    ``tour.json`` (the numbers) and ``programs/`` (the checked programs).

    Each section's report says when other programs took enough of the cores to lower
    its timings (read through ``load_sampler``, see :class:`fermion.measure.LoadMeter`)."""
    known = _section_names()
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(
            f"unknown tour section(s) {', '.join(map(repr, unknown))}; choose from {', '.join(known)}"
        )
    # absolute: the checked programs run with their own folder as working directory
    folder = Path(out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    transcript: list[str] = []

    def say(text: str) -> None:
        transcript.append(text)
        echo(text)

    report = TourReport(
        out=folder,
        quick=quick,
        machine=describe(),
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        plots=plotting_available(),
    )
    context = TourContext(out=folder, quick=quick, echo=say, load_sampler=load_sampler)
    say(f"fermion tour{' --quick' if quick else ''}: {report.machine}")
    if not report.plots:
        say(f"note: {PLOT_EXTRA_HINT}")
    chosen = [module for module in SECTIONS if not only or module.KEY in only]
    began = time.perf_counter()
    whole = context.load_meter()
    whole.start()
    scaling_data: dict[str, Any] | None = None
    for number, module in enumerate(chosen, 1):
        section = SectionResult(module.KEY, module.TITLE, echo=say)
        say(f"\n[{number}/{len(chosen)}] {module.TITLE}")
        started = time.perf_counter()
        meter = context.load_meter()
        meter.start()
        try:
            if module is _summary:
                _summary.run(context, section, scaling_data)
            else:
                module.run(context, section)
        except Exception as error:
            section.fail("the section", error)
        section.say(f"Exercise: {module.EXERCISE}")
        section.seconds = time.perf_counter() - started
        section.load = meter.stop()
        if section.busy_notice:
            say(f"  {section.busy_notice}")
        if module is _scaling:
            scaling_data = {**section.data, "load": section.load}
        status = "done" if section.ok else f"{len(section.failures)} step(s) FAILED"
        say(f"[{number}/{len(chosen)}] {status} in {section.seconds:.1f} s")
        report.sections.append(section)
    report.seconds = time.perf_counter() - began
    report.load = whole.stop()
    failed = [s.title for s in report.sections if not s.ok]
    if report.load.busy:
        say(
            f"\nThe machine was busy: other programs used {report.load.others:.1f} of "
            f"{report.load.cores} cores on average during the tour. Run it again on a quiet "
            "machine to see what this one can give."
        )
    say(
        f"\nTour finished in {report.seconds:.0f} s"
        + (f"; failed: {'; '.join(failed)}" if failed else "")
        + f". Report: {(folder / 'index.html').resolve()}"
    )
    write_html(report, folder / "index.html")
    (folder / "tour.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    (folder / "tour.txt").write_text("\n".join(transcript) + "\n", encoding="utf-8")
    return report
