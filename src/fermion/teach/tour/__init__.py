"""``fermion tour``: the lecture's hands-on session as one command.

Six sections, each measured on the user's machine: threads vs processes (with the GIL
load), a data race (stress and race detector), a deadlock (reported, not hung),
starvation (reader-writer lock policies), sharing (pickling vs shared memory) and the
backend advice. ``run_tour(out, quick=...)`` runs it from Python; the report is
``out/index.html``.
"""

from __future__ import annotations

from fermion.teach.tour._runner import SECTIONS, TourReport, run_tour
from fermion.teach.tour._section import SectionResult

__all__ = ["SECTIONS", "SectionResult", "TourReport", "run_tour"]
