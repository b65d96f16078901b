"""Executors: one ``concurrent.futures.Executor`` over serial, threads, processes and dask.

``Executor`` and ``map`` are for users; ``Backend`` and ``Task`` are the contract for
whoever writes a backend. The backends themselves are imported only when asked for.
"""

from __future__ import annotations

from fermion.executors._base import Backend, Task
from fermion.executors._chunking import ChunkPlanner
from fermion.executors._executor import Executor
from fermion.executors._oneliner import map
from fermion.executors._registry import backend_names

__all__ = ["Backend", "ChunkPlanner", "Executor", "Task", "backend_names", "map"]
