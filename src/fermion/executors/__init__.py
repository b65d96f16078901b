"""Executors: one ``concurrent.futures.Executor`` over serial, threads, processes and dask.

``Executor`` and ``map`` are for users; ``Backend`` and ``Task`` are the contract for
whoever writes a backend. Every name is imported on first use (PEP 562), and the
backends only when asked for: a worker process imports this package on its way to
its own module and needs none of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fermion.executors._base import Backend, Task
    from fermion.executors._chunking import ChunkPlanner
    from fermion.executors._executor import Executor
    from fermion.executors._oneliner import map
    from fermion.executors._registry import backend_names

__all__ = ["Backend", "ChunkPlanner", "Executor", "Task", "backend_names", "map"]

_LAZY: dict[str, str] = {
    "Backend": "fermion.executors._base",
    "Task": "fermion.executors._base",
    "ChunkPlanner": "fermion.executors._chunking",
    "Executor": "fermion.executors._executor",
    "map": "fermion.executors._oneliner",
    "backend_names": "fermion.executors._registry",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use, then keep it as a plain attribute."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'fermion.executors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
