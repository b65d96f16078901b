"""Measure and choose: profile a task, measure GIL load, advise a backend, benchmark.

- ``profile(fn, *args, **kwargs)``: wall and CPU time, waiting, GIL, pickling, start-up.
- ``gil_load()``: how busy the GIL was while a block ran.
- ``machine_load()``: how much of this process's cores other programs took meanwhile.
- ``advise(fn, items)``: which backend, how many workers, what chunk size, and why.
- ``bench(fn, items, backends=..., workers=...)``: the real speedups, as a table, a
  plot and a task timeline (plots need the ``plot`` extra).
"""

from __future__ import annotations

from fermion._costs._gil import GilLoad, gil_load
from fermion._costs._load import CpuSample, LoadMeter, MachineLoad, cpu_sample, machine_load
from fermion._costs._model import Advice, Machine, Option, TaskCost, recommend
from fermion.measure._advise import advise
from fermion.measure._bench import BenchResult, BenchRun, TaskSpan, bench
from fermion.measure._profile import Profile, profile

__all__ = [
    "Advice",
    "BenchResult",
    "BenchRun",
    "CpuSample",
    "GilLoad",
    "LoadMeter",
    "Machine",
    "MachineLoad",
    "Option",
    "Profile",
    "TaskCost",
    "TaskSpan",
    "advise",
    "bench",
    "cpu_sample",
    "gil_load",
    "machine_load",
    "profile",
    "recommend",
]
