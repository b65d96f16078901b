"""fermion's teaching layer: the tour, ``fermion stress``, the demos and the example
workloads.

It sits at the top of the library, below the command line and above ``measure``:
nothing in the check, executor, sharing or sync layers imports from it.
``fermion.teach.tour.run_tour(out)`` runs the hands-on session from Python;
:func:`stress` (also ``fermion.stress``) runs a concurrent trial many times;
:func:`count_primes` (CPU-bound pure Python, sized by :func:`calibrate_primes`) and
:func:`wait` (a sleep, as I/O waits) are the example workloads of the tour, the
notebook's exercises and the benchmarks.
"""

from __future__ import annotations

from fermion.teach._stress import StressResult, stress, stress_script
from fermion.teach._workloads import calibrate_primes, count_primes, wait

__all__ = ["StressResult", "calibrate_primes", "count_primes", "stress", "stress_script", "wait"]
