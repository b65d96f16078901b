"""What a tour section produces, and what it is given to work with.

A section fills a :class:`SectionResult` step by step (paragraphs, tables, images,
notes), so that what it measured before a step failed is still reported; a failed
step is recorded with :meth:`SectionResult.fail` and the section goes on.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fermion.measure import CpuSample, LoadMeter, MachineLoad, cpu_sample

__all__ = ["PLOT_EXTRA_HINT", "Block", "Image", "SectionResult", "TourContext"]

PLOT_EXTRA_HINT = (
    "plots skipped: matplotlib is not installed; install the 'plot' extra with "
    "pip install 'fermion[plot]' and run the tour again"
)


@dataclass(frozen=True)
class Block:
    """A paragraph (``kind="text"``), a preformatted table or listing (``"pre"``), or the
    source of a program the section ran (``"code"``, with its file as ``caption``)."""

    kind: str
    text: str
    caption: str = ""


@dataclass(frozen=True)
class Image:
    """A PNG written to the report folder: its file name there, and a caption."""

    file: str
    caption: str


def _silent(text: str) -> None:
    """An echo that prints nothing (a section run outside the tour)."""


@dataclass
class SectionResult:
    """One section of the tour: what it showed, and which of its steps failed."""

    key: str
    title: str
    echo: Callable[[str], None] = field(default=_silent, repr=False)
    blocks: list[Block] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: What other programs took of the cores while the section ran (None: not measured).
    load: MachineLoad | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def busy_notice(self) -> str | None:
        """The warning a busy machine earns this section, or None on a quiet one."""
        if self.load is None or not self.load.busy:
            return None
        return (
            f"Busy machine: {self.load.describe().replace(' meanwhile', ' during this section')}."
        )

    def say(self, text: str) -> None:
        """A paragraph of explanation or result."""
        self.blocks.append(Block("text", text))
        self.echo(text)

    def show(self, text: str) -> None:
        """A table or listing, kept as typed."""
        self.blocks.append(Block("pre", text))
        self.echo("\n".join("    " + line for line in text.splitlines()))

    def code(self, source: str, path: str | Path) -> None:
        """The program the section runs, as the report shows it; the terminal names its
        file instead of printing it all."""
        name = f"programs/{Path(path).name}"
        self.blocks.append(Block("code", source, name))
        self.echo(f"  code: {name} (listed in the report; it is what runs next)")

    def note(self, text: str) -> None:
        """A side remark (a skipped plot, a caveat)."""
        if text not in self.notes:
            self.notes.append(text)
            self.echo(f"  note: {text}")

    def fail(self, step: str, error: BaseException | str) -> None:
        """Record that ``step`` failed and why; the section carries on with the rest."""
        if isinstance(error, BaseException):
            where = traceback.extract_tb(error.__traceback__)
            place = (
                f" (at {os.path.basename(where[-1].filename)}:{where[-1].lineno})" if where else ""
            )
            text = f"{step} failed: {type(error).__name__}: {error}{place}"
        else:
            text = f"{step} failed: {error}"
        self.failures.append(text)
        self.echo(f"  FAILED: {text}")


@dataclass
class TourContext:
    """What every section gets: where to write, how big to make the work, and how to
    report progress. ``python`` runs the child programs (the checks, the hung demo)."""

    out: Path
    quick: bool = False
    echo: Callable[[str], None] = _silent
    python: str = sys.executable
    #: Where the machine's CPU counters are read from (tests feed fixed numbers).
    load_sampler: Callable[[], CpuSample] = cpu_sample

    def load_meter(self) -> LoadMeter:
        """A meter of what other programs take of the cores, reading ``load_sampler``."""
        return LoadMeter(self.load_sampler)

    def progress(self, text: str) -> None:
        """A progress line: which step is running now."""
        self.echo(f"  ... {text}")

    def save_plot(
        self, section: SectionResult, file: str, caption: str, draw: Callable[[Any], None]
    ) -> bool:
        """Draw a figure with ``draw(figure)`` and save it as ``file`` in the report
        folder; without matplotlib, note that the plot was skipped and which extra
        to install. Returns whether the plot was written."""
        from fermion.teach.tour import _plots

        if not _plots.plotting_available():
            section.note(PLOT_EXTRA_HINT)
            return False
        try:
            _plots.save(draw, self.out / file)
        except Exception as error:
            section.fail(f"drawing {file}", error)
            return False
        section.images.append(Image(file, caption))
        self.echo(f"  plot: {self.out / file}")
        return True
