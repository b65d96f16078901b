"""Warm receive areas: argument segments recycled between the tasks sent to one worker.

Why: a fresh segment costs far more than the copy into it. Writing 200 MB into new
tmpfs pages runs at under 1 GB/s (the kernel allocates and zeroes each 4 KiB page and
takes a fault or a page-cache insertion for it), while copying into pages that are
already allocated and mapped runs at memcpy speed (5-7 GB/s). So the caller keeps,
per connection (= per worker), a few *areas*: segments that it and that worker both
keep mapped, and reuses them for later arguments.

How an area stays safe to reuse:

- each area has a *slot* on the connection's *board*, a one-page segment both sides
  map; every send of an area bumps its *generation*;
- the worker maps an area once (unlinking its name at once, so idle areas have no
  name in /dev/shm and cannot leak one), and for each message hands
  ``pickle.loads`` a fresh NumPy view of it; when the last array built on that view
  is garbage-collected (usually when the task ends; later if user code kept the
  argument), a finalizer writes the generation into the board slot;
- the caller refills an area only once its slot shows the last generation it sent:
  no worker array can still see the old bytes. An area whose arrays are kept stays
  busy and a new one is made instead.

Lifetimes: names exist only between creation and the worker's first mapping (the
caller's pending list unlinks them if the worker dies first). The memory lives while
one side maps it: the worker's mapping ends with the worker, the caller's when the
connection is forgotten or dropped, or when the caller exits.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fermion.sharing import _segments

if TYPE_CHECKING:  # imported where used: a worker starts without NumPy
    import numpy as np

__all__ = ["AreaRef", "CallerAreas", "NoSlotError", "WorkerAreas", "supported", "worker_areas"]

#: Slots on a board (one page of int64 generations): at most this many areas per worker.
BOARD_SLOTS = 512
_BOARD_BYTES = BOARD_SLOTS * 8
#: Idle areas one connection keeps warm, and their total size; beyond, the least
#: recently used idle ones are dropped (the most recently used one is always kept).
MAX_IDLE_AREAS = 2
MAX_IDLE_BYTES = 512 << 20
#: Areas are sized in steps of this (so arrays of similar sizes share them).
_GRANULE = 1 << 16


@dataclass(frozen=True)
class AreaRef:
    """What travels for one buffer placed in an area (inside a ``SharedBuffer``).

    ``name``: the area's segment (only needed the first time the worker sees the
    slot, or when the slot holds a new segment); ``board``: the board's name;
    ``dropped``: slots the caller no longer uses (the worker unmaps them).
    """

    board: str
    slot: int
    generation: int
    dropped: tuple[int, ...] = ()


@dataclass(eq=False)
class _Area:
    name: str
    slot: int
    size: int
    mm: mmap.mmap
    generation: int = 0
    last_used: int = 0


@dataclass(eq=False)
class CallerAreas:
    """The caller's areas for one connection. Not thread-safe: the caller locks."""

    names: _segments.SegmentNames
    board_name: str = ""
    board: np.ndarray[Any, np.dtype[np.int64]] | None = None
    areas: list[_Area] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    clock: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Sends that reused a warm area / that had to make a new one (for tests, benchmarks).
    reused: int = 0
    created: int = 0

    def place(self, raw: memoryview) -> tuple[str, AreaRef, list[str]]:
        """Copy ``raw`` into an idle area (or a new one); returns the segment name,
        the reference to send, and the names of new segments (board, area) that the
        worker must still map and unlink."""
        import numpy as np  # on first use: a worker starts without NumPy

        new_names: list[str] = []
        if self.board is None:
            self.board_name = self.names.next()
            mm, fd = _segments.create_empty(self.board_name, _BOARD_BYTES, track=True)
            os.close(fd)
            self.board = np.frombuffer(mm, dtype=np.int64)
            new_names.append(self.board_name)
        nbytes = raw.nbytes
        area = self._idle_fit(nbytes)
        if area is None:
            area = self._create(raw)
            new_names.append(area.name)
            self.created += 1
        else:
            target = np.frombuffer(area.mm, dtype=np.uint8, count=nbytes)
            np.copyto(target, np.frombuffer(raw, dtype=np.uint8))
            del target
            self.reused += 1
        self.clock += 1
        area.generation += 1
        area.last_used = self.clock
        ref = AreaRef(self.board_name, area.slot, area.generation, tuple(self.dropped))
        self.dropped.clear()
        self._trim()
        return area.name, ref, new_names

    def _idle(self, area: _Area) -> bool:
        return self.board is not None and int(self.board[area.slot]) >= area.generation

    def _idle_fit(self, nbytes: int) -> _Area | None:
        fits = [a for a in self.areas if a.size >= nbytes and a.size <= 4 * nbytes + _GRANULE]
        idle = [a for a in fits if self._idle(a)]
        return min(idle, key=lambda a: a.size) if idle else None

    def _create(self, raw: memoryview) -> _Area:
        used = {a.slot for a in self.areas} | set(self.dropped)
        slot = next((s for s in range(BOARD_SLOTS) if s not in used), None)
        if slot is None:
            raise NoSlotError
        size = -(-raw.nbytes // _GRANULE) * _GRANULE
        name = self.names.next()
        # write(2) fills fresh tmpfs pages fastest; map afterwards (MAP_POPULATE: the
        # page tables come in one go) to copy straight into them from the next use on.
        _segments.create_and_write(name, [raw], track=True, size=size)
        try:
            mm, _ = _segments.map_segment(name, writable=True, unlink=False, populate=True)
        except BaseException:
            _segments.unlink_segment(name)
            raise
        if self.board is not None:
            self.board[slot] = 0
        area = _Area(name, slot, size, mm)
        self.areas.append(area)
        return area

    def _trim(self) -> None:
        idle = sorted((a for a in self.areas if self._idle(a)), key=lambda a: -a.last_used)
        kept_bytes = 0
        for rank, area in enumerate(idle):
            kept_bytes += area.size
            if rank >= MAX_IDLE_AREAS or (rank > 0 and kept_bytes > MAX_IDLE_BYTES):
                self._drop(area)

    def _drop(self, area: _Area) -> None:
        self.areas.remove(area)
        self.dropped.append(area.slot)
        _segments.unlink_segment(area.name)  # in case the worker never mapped it
        _close_quietly(area.mm)

    def close(self) -> None:
        """Unmap everything and unlink the names the worker never removed."""
        for area in self.areas:
            _segments.unlink_segment(area.name)
            _close_quietly(area.mm)
        self.areas.clear()
        if self.board is not None:
            _segments.unlink_segment(self.board_name)
            self.board = None


class NoSlotError(Exception):
    """Every slot of a board is busy: the caller falls back to a one-off segment."""


def _close_quietly(mm: mmap.mmap) -> None:
    with contextlib.suppress(BufferError):  # a view still exported: unmapped when freed
        mm.close()


class WorkerAreas:
    """The areas a worker has mapped, per board (i.e. per caller connection)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boards: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {}
        self._areas: dict[tuple[str, int], tuple[str, mmap.mmap]] = {}

    def buffer(self, name: str, nbytes: int, ref: AreaRef) -> np.ndarray[Any, Any]:
        """A fresh writable view of ``nbytes`` of the area; when the last array built
        on it dies, the board tells the caller the area is free again."""
        import numpy as np  # on first use: a worker starts without NumPy

        with self._lock:
            board = self._boards.get(ref.board)
            if board is None:
                # A worker listens to one caller connection; a new board means the
                # caller started over: let go of the old areas (arrays still on them
                # keep their own mapping alive until they die).
                self._boards.clear()
                self._areas.clear()
                mm, _ = _segments.map_segment(ref.board, writable=True, unlink=True)
                board = np.frombuffer(mm, dtype=np.int64)
                self._boards[ref.board] = board
            for slot in ref.dropped:
                self._areas.pop((ref.board, slot), None)
            known = self._areas.get((ref.board, ref.slot))
            if known is None or known[0] != name:
                mm, _ = _segments.map_segment(name, writable=True, unlink=True, populate=True)
                known = (name, mm)
                self._areas[(ref.board, ref.slot)] = known
        view = np.frombuffer(known[1], dtype=np.uint8, count=nbytes)
        weakref.finalize(view, _mark_free, board, ref.slot, ref.generation)
        return view


def _mark_free(board: np.ndarray[Any, Any], slot: int, generation: int) -> None:
    board[slot] = generation


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
    """Areas need POSIX shared memory; off on Windows."""
    return _segments.posix_shm_available() and sys.platform != "win32"
