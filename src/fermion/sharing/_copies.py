"""One copy per distinct array: the caller's shared-memory copies of arguments.

Why: the same array is often passed to many tasks (a lookup table, a model's weights,
one dataset for many parameter values), and copying it once per task costs far more
than the tasks' work. So the caller keeps *copies*: segments that hold the bytes of
one argument buffer and serve every task that passes the same array, to any worker.

When a copy is reused (the rule of docs/sharing.md, section 1):

- a **read-only** array (``flags.writeable`` False, and every array it is a view of
  read-only too) cannot change: its copy serves every task for as long as the caller
  keeps the array (identity by weak reference) and a pool is running, across ``map``
  calls;
- a **writable** array may change between tasks: its copy serves the tasks sent while
  an earlier task that took it is not finished yet (one ``map`` over ``[a] * 8``, a
  burst of ``submit``\\ s); once all of them are done, the next task gets a fresh copy,
  so a task started after the caller changed the array sees the change.

Under the copies lie *segments*, recycled rather than freed: a segment whose copy is
no longer valid, once no worker uses it, waits warm (mapped, its pages faulted in) for
the next copy of a similar size; copying into it runs at memory speed, while filling a
fresh segment pays a page fault per 4 KiB page. At most ``MAX_FREE_SEGMENTS`` and
``MAX_FREE_BYTES`` wait; a free segment is returned to the OS after ``FREE_IDLE_S``
seconds idle (checked whenever the caller sends), when the last connection closes
(the pool shut down: copies are dropped too), and at exit (the ledger).

Whether a worker still uses a segment: each connection (= one worker) has a *board*,
a page of int64 slots both sides map. A segment sent on a connection holds a slot
there; every send carries a new *generation* for it; the worker, when the last array
it built on the segment is garbage-collected, writes the highest generation it has
received into the slot. The caller refills a segment only once every board it was
sent on shows the last generation sent (see ``fermion.sharing._areas``, the worker's
half). A worker that keeps an argument (in a global) keeps its segment busy: it is
never overwritten, a new one is made.

One owner: ``ArgumentCopies`` (one per caller process) holds every copy, segment and
board, behind one lock. Events from other threads (an array garbage-collected, a
task finished) are queued and applied at its next call, never under a finalizer.
"""

from __future__ import annotations

import collections
import contextlib
import mmap
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fermion.sharing import _segments
from fermion.sharing._areas import BOARD_SLOTS, AreaRef

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ArgumentCopies", "Lease", "NoSlotError", "deeply_read_only"]

#: Free segments kept warm, and their total size; beyond, the least recently freed go.
MAX_FREE_SEGMENTS = 4
MAX_FREE_BYTES = 1 << 30
#: A free segment unused this long (seconds) is returned to the OS.
FREE_IDLE_S = 60.0
#: Copies of read-only arrays kept for later tasks, in bytes: beyond, the least recently
#: used ones that no worker holds are let go (a map over many big read-only arrays,
#: e.g. memory-mapped files, must not keep a shared copy of each).
MAX_KEPT_BYTES = 2 << 30
#: Segments are sized in steps of this (arrays of similar sizes share them), and a
#: free segment serves a buffer of at least a quarter of its size.
_GRANULE = 1 << 16
_BOARD_BYTES = BOARD_SLOTS * 8


class NoSlotError(Exception):
    """Every slot of a connection's board is taken: send a one-off segment instead."""


@dataclass(eq=False)
class _Board:
    name: str
    slots: np.ndarray[Any, np.dtype[np.int64]]
    conn: weakref.ref[Any]
    free_slots: list[int] = field(default_factory=lambda: list(range(BOARD_SLOTS - 1, -1, -1)))
    #: Segments returned to the OS that the worker may still have mapped: named in the
    #: next message on this connection, so that the worker lets go of them.
    dropped: list[str] = field(default_factory=list)
    generation: int = 0


@dataclass(eq=False)
class _Segment:
    name: str
    size: int
    mm: mmap.mmap
    #: Connection key -> (board, slot, last generation sent on it).
    uses: dict[int, tuple[_Board, int, int]] = field(default_factory=dict)
    copy: _Copy | None = None
    freed_at: float = 0.0


@dataclass(eq=False)
class _Copy:
    key: int
    source: Callable[[], Any]  # a weak reference to the array
    address: int
    nbytes: int
    read_only: bool
    segment: _Segment
    #: Unfinished tasks that took this copy (writable sources only).
    leases: int = 0
    last_used: float = 0.0


class Lease:
    """A writable array's copy taken by one task; ``release`` when the task is done."""

    __slots__ = ("_copies", "_copy", "_released")

    def __init__(self, copies: ArgumentCopies, copy: _Copy) -> None:
        self._copies = copies
        self._copy = copy
        self._released = False

    def release(self) -> None:
        """Idempotent; safe from any thread (applied at the owner's next call)."""
        if not self._released:
            self._released = True
            self._copies._post(("lease", self._copy))


class ArgumentCopies:
    """The caller's copies of argument buffers, their segments and the boards."""

    def __init__(self, names: _segments.SegmentNames) -> None:
        self._names = names
        self._lock = threading.Lock()
        self._events: collections.deque[tuple[str, Any]] = collections.deque()
        self._copies: dict[int, _Copy] = {}  # id(source object) -> its copy
        self._segments: list[_Segment] = []
        self._boards: dict[int, _Board] = {}  # connection key -> its board
        #: Counters (for tests and benchmarks).
        self.copies_made = 0
        self.copies_reused = 0
        self.segments_created = 0
        self.segments_recycled = 0
        #: Time spent copying into warm (recycled) and fresh segments, and the bytes.
        self.warm_copy_ns = self.warm_copy_bytes = 0
        self.fresh_copy_ns = self.fresh_copy_bytes = 0

    # -- the one entry point for a send -------------------------------------------------

    def place(
        self, conn_key: int, conn: Any, raw: memoryview, source: Any
    ) -> tuple[str, AreaRef, list[str], Lease | None]:
        """Put the bytes of ``raw`` (a buffer of ``source``) where ``conn``'s worker can
        map them: an existing copy of ``source`` if one is valid, else a new copy in a
        free warm segment or a new one. Returns the segment's name, the reference to
        send, names the worker must map and unlink (a new board), and a lease to
        release when the task is done (writable sources)."""
        now = time.monotonic()
        with self._lock:
            self._apply_events(now)
            new_names: list[str] = []
            board = self._boards.get(conn_key)
            if board is None or board.conn() is not conn:
                if board is not None:
                    self._drop_board(conn_key)
                board = self._new_board(conn)
                self._boards[conn_key] = board
                new_names.append(board.name)
            copy = self._valid_copy(raw, source)
            if copy is None:
                copy = self._new_copy(raw, source, now)
            else:
                self.copies_reused += 1
            copy.last_used = now
            segment = copy.segment
            use = segment.uses.get(conn_key)
            if use is None:
                if not board.free_slots:
                    if not copy.read_only and copy.leases == 0:
                        self._forget_copy(copy, now)
                    raise NoSlotError
                slot = board.free_slots.pop()
                board.slots[slot] = 0
            else:
                slot = use[1]
            board.generation += 1
            segment.uses[conn_key] = (board, slot, board.generation)
            lease = None
            if not copy.read_only:
                copy.leases += 1
                lease = Lease(self, copy)
            ref = AreaRef(board.name, slot, board.generation, tuple(board.dropped))
            board.dropped.clear()
            self._trim(now)
            return segment.name, ref, new_names, lease

    # -- copies ---------------------------------------------------------------------------

    def _valid_copy(self, raw: memoryview, source: Any) -> _Copy | None:
        copy = self._copies.get(id(source))
        if copy is None:
            return None
        if (
            copy.source() is not source
            or copy.address != _segments.buffer_address(raw)
            or copy.nbytes != raw.nbytes
            or (copy.read_only and not deeply_read_only(source))
            or (not copy.read_only and copy.leases == 0)
        ):
            self._forget_copy(copy, time.monotonic())
            return None
        return copy

    def _new_copy(self, raw: memoryview, source: Any, now: float) -> _Copy:
        segment = self._free_fit(raw.nbytes)
        if segment is None:
            segment = self._create(raw)
        else:
            self._fill(segment, raw)
        self.copies_made += 1
        read_only = deeply_read_only(source)
        try:
            ref = weakref.ref(source, self._source_died)
        except TypeError:  # not weak-referenceable: this copy serves one task only
            ref = None
        key = id(source)
        copy = _Copy(
            key, ref or _dead, _segments.buffer_address(raw), raw.nbytes, read_only, segment
        )
        segment.copy = copy
        if ref is not None:
            old = self._copies.pop(key, None)
            if old is not None:
                self._forget_copy(old, now)
            self._copies[key] = copy
        elif read_only:  # nothing can find it again: free once the task is done
            copy.read_only = False
        return copy

    def _forget_copy(self, copy: _Copy, now: float) -> None:
        if self._copies.get(copy.key) is copy:
            del self._copies[copy.key]
        if copy.segment.copy is copy:
            copy.segment.copy = None
            copy.segment.freed_at = now

    def _source_died(self, ref: weakref.ref[Any]) -> None:
        self._post(("died", ref))

    def _post(self, event: tuple[str, Any]) -> None:
        """Queue an event from any thread or finalizer; apply it now unless the lock is
        held (by another thread, or by this one when a garbage collection ran a
        finalizer inside a call): then the holder's next call applies it."""
        self._events.append(event)
        if self._lock.acquire(blocking=False):
            try:
                self._apply_events(time.monotonic())
            finally:
                self._lock.release()

    def _apply_events(self, now: float) -> None:
        while self._events:
            kind, what = self._events.popleft()
            if kind == "lease":
                what.leases -= 1
                if what.leases <= 0 and not what.read_only:
                    self._forget_copy(what, now)
            elif kind == "died":
                for copy in [c for c in self._copies.values() if c.source is what]:
                    self._forget_copy(copy, now)
            elif what in self._boards:  # "forget": a connection
                self._drop_board(what)
        if not self._boards and self._segments:
            # No pool is running: copies and free segments have nobody to serve.
            for copy in list(self._copies.values()):
                self._forget_copy(copy, now)
            for segment in [s for s in self._segments if self._free(s)]:
                self._release_segment(segment)

    # -- segments -------------------------------------------------------------------------

    def _busy(self, segment: _Segment) -> bool:
        """Whether a worker may still see the segment's bytes."""
        for board, slot, generation in segment.uses.values():
            if int(board.slots[slot]) < generation:
                return True
        return False

    def _free(self, segment: _Segment) -> bool:
        return segment.copy is None and not self._busy(segment)

    def _free_fit(self, nbytes: int) -> _Segment | None:
        fits = [
            s for s in self._segments if nbytes <= s.size <= 4 * nbytes + _GRANULE and self._free(s)
        ]
        return min(fits, key=lambda s: s.size) if fits else None

    def _fill(self, segment: _Segment, raw: memoryview) -> None:
        import numpy as np

        start = time.perf_counter_ns()
        target = np.frombuffer(segment.mm, dtype=np.uint8, count=raw.nbytes)
        np.copyto(target, np.frombuffer(raw, dtype=np.uint8))
        self.warm_copy_ns += time.perf_counter_ns() - start
        self.warm_copy_bytes += raw.nbytes
        self.segments_recycled += 1

    def _create(self, raw: memoryview) -> _Segment:
        start = time.perf_counter_ns()
        size = -(-raw.nbytes // _GRANULE) * _GRANULE
        name = self._names.next()
        # write(2) fills fresh tmpfs pages fastest; map afterwards (MAP_POPULATE: the
        # page tables come in one go) to copy straight into them when it is recycled.
        _segments.create_and_write(name, [raw], track=True, size=size)
        try:
            mm, _ = _segments.map_segment(name, writable=True, unlink=False, populate=True)
        except BaseException:
            _segments.unlink_segment(name)
            raise
        segment = _Segment(name, size, mm)
        self._segments.append(segment)
        self.segments_created += 1
        self.fresh_copy_ns += time.perf_counter_ns() - start
        self.fresh_copy_bytes += raw.nbytes
        return segment

    def _trim(self, now: float) -> None:
        """Let go of read-only copies beyond ``MAX_KEPT_BYTES``; return free segments
        beyond the bounds, or idle too long, to the OS."""
        kept = sorted((c for c in self._copies.values() if c.read_only), key=lambda c: -c.last_used)
        kept_bytes = 0
        for copy in kept:
            kept_bytes += copy.segment.size
            if kept_bytes > MAX_KEPT_BYTES and not self._busy(copy.segment):
                self._forget_copy(copy, now)
        free = sorted((s for s in self._segments if self._free(s)), key=lambda s: -s.freed_at)
        kept_bytes = 0
        for rank, segment in enumerate(free):
            kept_bytes += segment.size
            if (
                rank >= MAX_FREE_SEGMENTS
                or kept_bytes > MAX_FREE_BYTES
                or now - segment.freed_at > FREE_IDLE_S
            ):
                self._release_segment(segment)

    def _release_segment(self, segment: _Segment) -> None:
        self._segments.remove(segment)
        for board, slot, _ in segment.uses.values():
            board.free_slots.append(slot)
            board.dropped.append(segment.name)
        segment.uses.clear()
        _segments.unlink_segment(segment.name)
        _close_quietly(segment.mm)

    # -- boards (one per connection) ------------------------------------------------------

    def _new_board(self, conn: Any) -> _Board:
        import numpy as np

        name = self._names.next()
        mm, fd = _segments.create_empty(name, _BOARD_BYTES, track=True)
        os.close(fd)
        return _Board(name, np.frombuffer(mm, dtype=np.int64), weakref.ref(conn))

    def _drop_board(self, conn_key: int) -> None:
        board = self._boards.pop(conn_key)
        for segment in self._segments:
            segment.uses.pop(conn_key, None)
        _segments.unlink_segment(board.name)  # in case the worker never mapped it

    def forget_connection(self, conn_key: int) -> None:
        """The connection is closed or its worker gone: its board no longer counts
        (the worker's mappings end with it); with no connection left, every free
        segment is returned to the OS. Safe from a finalizer."""
        self._post(("forget", conn_key))

    def forget_closed(self) -> None:
        """Forget the boards of connections that were closed or garbage-collected."""
        with self._lock:
            closed = [
                key
                for key, board in self._boards.items()
                if board.conn() is None or getattr(board.conn(), "closed", False)
            ]
        for key in closed:
            self.forget_connection(key)

    def trim(self) -> None:
        """Apply pending events and return idle free segments to the OS."""
        now = time.monotonic()
        with self._lock:
            self._apply_events(now)
            self._trim(now)

    def close(self) -> None:
        """Return everything to the OS (at exit, or in tests)."""
        with self._lock:
            for key in list(self._boards):
                self._drop_board(key)
            for segment in list(self._segments):
                self._release_segment(segment)
            self._copies.clear()

    def statistics(self) -> dict[str, int]:
        with self._lock:
            self._apply_events(time.monotonic())
            free = [s for s in self._segments if self._free(s)]
            return {
                "copies_made": self.copies_made,
                "copies_reused": self.copies_reused,
                "segments_created": self.segments_created,
                "segments_recycled": self.segments_recycled,
                "warm_copy_ns": self.warm_copy_ns,
                "warm_copy_bytes": self.warm_copy_bytes,
                "fresh_copy_ns": self.fresh_copy_ns,
                "fresh_copy_bytes": self.fresh_copy_bytes,
                "segment_bytes": sum(s.size for s in self._segments),
                "free_segment_bytes": sum(s.size for s in free),
                "boards": len(self._boards),
            }


def _dead() -> None:
    return None


def deeply_read_only(obj: Any) -> bool:
    """Whether ``obj`` cannot change: read-only, and so is every array it views, down
    to memory that is itself read-only (``bytes``, a read-only buffer) or owned."""
    import numpy as np

    seen = 0
    while isinstance(obj, np.ndarray):
        if obj.flags.writeable:
            return False
        base = obj.base
        if base is None:
            return True
        obj = base
        seen += 1
        if seen > 64:  # pragma: no cover - absurdly deep view chains: do not trust
            return False
    if isinstance(obj, bytes):
        return True
    try:
        return memoryview(obj).readonly
    except TypeError:
        return False


def _close_quietly(mm: mmap.mmap) -> None:
    with contextlib.suppress(BufferError):  # a view still exported: unmapped when freed
        mm.close()
