"""fermion's teaching layer: the tour, ``fermion stress``, the demos and the example
workloads.

It sits at the top of the library, below the command line and above ``measure``:
nothing in the check, executor, sharing or sync layers imports from it.
``fermion.teach.tour.run_tour(out)`` runs the hands-on session from Python;
:func:`stress` (also ``fermion.stress``) runs a concurrent trial many times.
"""

from __future__ import annotations

from fermion.teach._stress import StressResult, stress, stress_script

__all__ = ["StressResult", "stress", "stress_script"]
