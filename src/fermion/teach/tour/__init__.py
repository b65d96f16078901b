"""``fermion tour``: the lecture's hands-on session as one command.

Thirteen sections, the whole lecture, each measured on the user's machine: threads vs
processes (with the GIL load), the GIL's switch interval, the overhead of processes, a
data race (stress and race detector), atomic operations, data corruption (an invariant
torn between two fields), mutex vs semaphore, queues, a deadlock (reported, not hung),
starvation (reader-writer lock policies), killable processes, sharing (pickling vs shared
memory) and the backend advice. Each section says when other programs kept the cores
busy while it ran. ``run_tour(out, quick=...)`` runs it from Python; the report is
``out/index.html``.
"""

from __future__ import annotations

from fermion.teach.tour._runner import SECTIONS, TourReport, run_tour
from fermion.teach.tour._section import SectionResult

__all__ = ["SECTIONS", "SectionResult", "TourReport", "run_tour"]
