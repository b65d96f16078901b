"""Sharing without pickling: NumPy arrays and values in shared memory.

- ``shared_array(shape, dtype)`` / ``shared_copy(array)``: a ``SharedArray`` (an
  ``ndarray``) that process workers write into and the caller reads, with no copy;
  it reaches workers by name.
- ``SharedValue`` / ``SharedCounter``: scalars that many processes read and update
  atomically (under a process-shared lock).
- ``SharedMemoryTransport``: how the ``processes`` backend moves large pickle-5
  buffers (NumPy arrays in arguments and results) through shared memory instead of
  its pipe; users need not touch it.

Every segment is named ``fermion-<pid>-...`` after its owner and is unlinked when no
longer referenced, at exit, and (by the pool) after a worker dies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fermion.sharing._array import SharedArray, shared_array, shared_copy
    from fermion.sharing._segments import sweep
    from fermion.sharing._transport import (
        DEFAULT_THRESHOLD,
        SharedBuffer,
        SharedMemoryTransport,
    )
    from fermion.sharing._values import ProcessSharedLock, SharedCounter, SharedValue

#: Each public name and its module, imported on first use (PEP 562): the process pool's
#: workers import this package for its transport and must not pay for NumPy at start-up.
_LAZY = {
    "DEFAULT_THRESHOLD": "fermion.sharing._transport",
    "ProcessSharedLock": "fermion.sharing._values",
    "SharedArray": "fermion.sharing._array",
    "SharedBuffer": "fermion.sharing._transport",
    "SharedCounter": "fermion.sharing._values",
    "SharedMemoryTransport": "fermion.sharing._transport",
    "SharedValue": "fermion.sharing._values",
    "shared_array": "fermion.sharing._array",
    "shared_copy": "fermion.sharing._array",
    "sweep": "fermion.sharing._segments",
}

__all__ = [
    "DEFAULT_THRESHOLD",
    "ProcessSharedLock",
    "SharedArray",
    "SharedBuffer",
    "SharedCounter",
    "SharedMemoryTransport",
    "SharedValue",
    "shared_array",
    "shared_copy",
    "sweep",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
