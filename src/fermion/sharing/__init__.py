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

from fermion.sharing._array import SharedArray, shared_array, shared_copy
from fermion.sharing._segments import sweep
from fermion.sharing._transport import DEFAULT_THRESHOLD, SharedBuffer, SharedMemoryTransport
from fermion.sharing._values import ProcessSharedLock, SharedCounter, SharedValue

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
