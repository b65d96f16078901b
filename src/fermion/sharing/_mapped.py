"""A mapped shared-memory segment that shared arrays and values live on.

The process that creates a segment owns it: when its ``MappedSegment`` object is
garbage-collected (every array or value using it is gone), or at the latest when the
process exits, the name is unlinked. Other processes open it by name; a process maps
each segment once (``open`` reuses a live mapping), and its memory is unmapped when
its last user in that process is gone.
"""

from __future__ import annotations

import collections
import contextlib
import mmap
import os
import threading
import weakref
from typing import Any

from fermion.sharing import _segments

__all__ = ["MappedSegment"]

_names: tuple[int, _segments.SegmentNames] | None = None
_names_lock = threading.Lock()
_live: weakref.WeakValueDictionary[str, MappedSegment] = weakref.WeakValueDictionary()
_live_lock = threading.Lock()
#: Segments of other processes that this process mapped lately, kept mapped (strong
#: references) so that the next task using the same shared array finds its page tables
#: ready: mapping a 200 MB segment afresh costs ~50,000 page faults (about 20 ms).
#: An entry leaves when its owner has unlinked the name (checked at every ``open``),
#: when more than ``_RECENT_COUNT`` are kept, and when this process exits.
_recent: collections.OrderedDict[str, MappedSegment] = collections.OrderedDict()
_recent_pid = 0
_RECENT_COUNT = 8


def _next_name() -> str:
    global _names
    with _names_lock:
        if _names is None or _names[0] != os.getpid():
            _names = (os.getpid(), _segments.SegmentNames(_segments.process_prefix()))
        names = _names[1]
    return names.next()


def _release(name: str, fd: int | None, owner: bool, pid: int) -> None:
    if pid != os.getpid():  # a forked child's copy: the parent still uses both
        return
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
    if owner:
        _segments.unlink_segment(name)


def _keep_recent(segment: MappedSegment) -> None:
    """Remember ``segment`` among the recent mappings (``_live_lock`` held)."""
    global _recent_pid
    if _recent_pid != os.getpid():  # a forked child: the parent's entries are not ours
        _recent.clear()
        _recent_pid = os.getpid()
    _recent[segment.name] = segment
    _recent.move_to_end(segment.name)
    while len(_recent) > _RECENT_COUNT:
        _recent.popitem(last=False)


def _forget_unlinked() -> None:
    """Drop the recent mappings whose owners removed the name (the memory goes back)."""
    with _live_lock:
        names = list(_recent) if _recent_pid == os.getpid() else []
    gone = [name for name in names if not _segments.segment_exists(name)]
    if gone:
        with _live_lock:
            for name in gone:
                _recent.pop(name, None)


class MappedSegment:
    """One segment mapped into this process (read-write), optionally with its fd open.

    ``owner``: this process created it and unlinks its name when this object dies.
    ``fd`` stays open only when asked for (process-shared locks need it).
    """

    __slots__ = (
        "__weakref__",
        "_finalizer",
        "address",
        "fd",
        "lock",
        "mmap",
        "name",
        "owner",
        "pid",
    )

    def __init__(self, name: str, mm: mmap.mmap, fd: int | None, *, owner: bool) -> None:
        self.name = name
        self.mmap = mm
        self.fd = fd
        self.owner = owner
        self.pid = os.getpid()
        #: The process-shared lock of the values living here (one per process and
        #: segment, whatever number of objects use it); set by ``_values``.
        self.lock: Any = None
        self.address = _segments.buffer_address(mm)
        self._finalizer = weakref.finalize(self, _release, name, fd, owner, self.pid)

    @property
    def size(self) -> int:
        return len(self.mmap)

    @classmethod
    def create(cls, size: int, *, keep_fd: bool = False) -> MappedSegment:
        """A new zero-filled segment owned by this process."""
        name = _next_name()
        mm, fd = _segments.create_empty(name, size)
        if not keep_fd:
            os.close(fd)
        segment = cls(name, mm, fd if keep_fd else None, owner=True)
        with _live_lock:
            _live[name] = segment
        return segment

    @classmethod
    def open(cls, name: str, *, keep_fd: bool = False) -> MappedSegment:
        """Map the segment ``name`` (or reuse this process's live mapping of it)."""
        _forget_unlinked()
        with _live_lock:
            segment = _live.get(name)
            if (
                segment is not None
                and segment.pid == os.getpid()
                and (segment.fd is not None or not keep_fd)
            ):
                return segment
        mm, fd = _segments.map_segment(name, writable=True, unlink=False, keep_fd=keep_fd)
        segment = cls(name, mm, fd, owner=False)
        with _live_lock:
            segment = _live.setdefault(name, segment)
            _keep_recent(segment)
        return segment

    def contains(self, address: int, nbytes: int) -> bool:
        """Whether ``nbytes`` bytes at ``address`` lie inside this mapping."""
        return self.address <= address and address + nbytes <= self.address + len(self.mmap)

    def __repr__(self) -> str:
        role = "owner" if self.owner else "mapped"
        return f"<MappedSegment {self.name} {len(self.mmap)} bytes ({role})>"
