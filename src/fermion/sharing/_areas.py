"""The worker's half of argument copies: mapped segments, and the board it answers on.

The caller (``fermion.sharing._copies``) keeps one copy per distinct argument array in
a segment that several tasks, on several workers, may read at once. So a worker:

- maps each such segment once, read-only, and keeps the mapping (the next task on
  the same array, or on a later array copied into the same recycled segment, finds
  its page tables ready: mapping 200 MB afresh costs ~50,000 page faults); it lets go
  of a mapping when the caller says the segment was returned to the OS (``dropped``
  in the next message) or when the caller's connection changes;
- hands ``pickle.loads`` a fresh read-only NumPy view of the segment per message, and
  counts the live views per segment; when the last one is garbage-collected (usually
  when the task ends; later if user code kept the argument) it writes the highest
  generation it has received for that segment into the segment's slot on the board,
  a one-page segment it shares with the caller. The caller overwrites a segment only
  once every board it was sent on shows its last generation.

The views are read-only because several tasks share one copy: a task that wants to
modify its argument works on ``a.copy()`` (as with joblib's memory mapping).
"""

from __future__ import annotations

import collections
import mmap
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fermion.sharing import _segments

if TYPE_CHECKING:  # imported where used: a worker starts without NumPy
    import numpy as np

__all__ = ["BOARD_SLOTS", "AreaRef", "WorkerAreas", "supported", "worker_areas"]

#: Slots on a board (one page of int64 generations): at most this many segments in use
#: per worker at once.
BOARD_SLOTS = 512
#: Mappings a worker keeps beyond those the caller still uses (least recently used go).
MAX_MAPPINGS = 16


@dataclass(frozen=True)
class AreaRef:
    """What travels for one buffer placed in a segment (inside a ``SharedBuffer``).

    ``board``: the board's name; ``slot``/``generation``: where and what to answer when
    the views die; ``dropped``: segments the caller returned to the OS since its last
    message on this connection (the worker unmaps them).
    """

    board: str
    slot: int
    generation: int
    dropped: tuple[str, ...] = ()


class _Slot:
    __slots__ = ("highest", "live", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.live = 0
        self.highest = 0


class WorkerAreas:
    """The segments a worker has mapped, and its board (one caller connection)."""

    def __init__(self) -> None:
        # Reentrant: a view's finalizer may run (garbage collection) while ``buffer``
        # holds the lock in the same thread.
        self._lock = threading.RLock()
        self._board_name = ""
        self._board: np.ndarray[Any, np.dtype[np.int64]] | None = None
        self._mappings: collections.OrderedDict[str, mmap.mmap] = collections.OrderedDict()
        self._slots: dict[int, _Slot] = {}

    def buffer(self, name: str, nbytes: int, ref: AreaRef) -> np.ndarray[Any, Any]:
        """A fresh read-only view of the first ``nbytes`` of segment ``name``; when the
        last view of it dies, the board tells the caller the segment is free again."""
        import numpy as np  # on first use: a worker starts without NumPy

        with self._lock:
            if ref.board != self._board_name:
                # A worker listens to one caller connection; a new board means the
                # caller started over: let go of the old mappings (arrays still on
                # them keep their own mapping alive until they die).
                mm, _ = _segments.map_segment(ref.board, writable=True, unlink=True)
                self._board = np.frombuffer(mm, dtype=np.int64)
                self._board_name = ref.board
                self._mappings.clear()
                self._slots = {}
            for dropped in ref.dropped:
                self._mappings.pop(dropped, None)
            known = self._mappings.get(name)
            if known is None:
                mm, _ = _segments.map_segment(name, writable=False, unlink=False, populate=True)
                self._mappings[name] = mm
                while len(self._mappings) > MAX_MAPPINGS:
                    self._mappings.popitem(last=False)
            else:
                mm = known
                self._mappings.move_to_end(name)
            slot = self._slots.get(ref.slot)
            if slot is None or slot.name != name:
                slot = self._slots[ref.slot] = _Slot(name)
            slot.highest = max(slot.highest, ref.generation)
            slot.live += 1
            board = self._board
            if board is None:  # pragma: no cover - mapped above with its name
                raise RuntimeError(f"board {ref.board!r} is not mapped")
        view = np.frombuffer(mm, dtype=np.uint8, count=nbytes)
        weakref.finalize(view, self._view_died, board, ref.slot, slot)
        return view

    def _view_died(self, board: np.ndarray[Any, Any], index: int, slot: _Slot) -> None:
        with self._lock:
            slot.live -= 1
            if slot.live == 0 and self._slots.get(index) is slot:
                board[index] = slot.highest


_worker_areas: tuple[int, WorkerAreas] | None = None
_worker_areas_lock = threading.Lock()


def worker_areas() -> WorkerAreas:
    """This process's ``WorkerAreas`` (a new one after fork)."""
    global _worker_areas
    with _worker_areas_lock:
        if _worker_areas is None or _worker_areas[0] != os.getpid():
            _worker_areas = (os.getpid(), WorkerAreas())
        return _worker_areas[1]


def supported() -> bool:
    """Copies need POSIX shared memory; off on Windows."""
    return _segments.posix_shm_available() and sys.platform != "win32"
