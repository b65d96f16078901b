"""Out-of-band pickle buffers through shared memory instead of a pipe.

Pickle protocol 5 hands large buffers (NumPy arrays, bytearrays, anything exposing
``PickleBuffer``) to a ``buffer_callback`` instead of copying them into the pickle.
``SharedMemoryTransport.export_buffers`` turns each such buffer into either the
buffer itself (small: it stays in-band, through the pipe) or a ``SharedBuffer``
descriptor naming a segment that now holds its bytes (large: one copy, straight into
the page cache). ``import_buffers`` maps the segments on the other side, so that
``pickle.loads(..., buffers=...)`` rebuilds the arrays *on* the shared memory: no
copy, and the memory is released when the last array using it is garbage-collected.

Arguments (caller -> worker) are mapped read-only: the worker cannot change the
caller's data, and a write raises ``ValueError: assignment destination is
read-only``. Results (worker -> caller) are mapped writable: the caller owns them.
"""

from __future__ import annotations

import mmap
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fermion.sharing import _segments
from fermion.sharing._areas import AreaRef

__all__ = ["DEFAULT_THRESHOLD", "SharedBuffer", "SharedMemoryTransport"]

#: Buffers at least this large travel through shared memory; smaller ones through
#: the pipe (a segment costs a few system calls and a page of memory at least).
DEFAULT_THRESHOLD = 1 << 20


@dataclass(frozen=True)
class SharedBuffer:
    """Stands in for one out-of-band buffer: the segment that holds its bytes.

    ``unlink_on_map``: the receiver is the only one and removes the name as soon as
    it has mapped the segment. ``area``: the segment is one of the caller's argument
    copies, which the receiver maps once, keeps mapped and answers for on its board
    (see ``fermion.sharing._copies`` and ``_areas``).
    """

    name: str
    nbytes: int
    unlink_on_map: bool = True
    area: AreaRef | None = None


class SharedMemoryTransport:
    """Moves pickle-5 out-of-band buffers through segments named ``<prefix>-<n>``.

    One per sending side: the pool uses its own prefix for arguments and gives each
    worker ``<pool prefix>-w<pid>`` for results, so that ``sweep`` can remove what a
    dead worker left behind. ``threshold`` is the size in bytes from which a buffer
    goes through shared memory (0 sends every non-empty buffer that way; ``None``
    disables the transport). On platforms without POSIX shared memory every buffer
    stays in-band.
    """

    def __init__(self, prefix: str, *, threshold: int | None = DEFAULT_THRESHOLD) -> None:
        if threshold is not None and (not isinstance(threshold, int) or threshold < 0):
            raise ValueError(
                f"threshold must be a non-negative number of bytes or None, not {threshold!r}"
            )
        self._names = _segments.SegmentNames(prefix)
        self.prefix = prefix
        self.threshold = threshold if _segments.posix_shm_available() else None
        #: Bytes sent through shared memory and in-band so far (for benchmarks/tests).
        self.shared_bytes = 0
        self.inband_bytes = 0

    def export_buffers(
        self,
        buffers: Sequence[pickle.PickleBuffer],
        *,
        single_receiver: bool = True,
        keep_owned: bool = False,
    ) -> tuple[list[Any], list[str]]:
        """Replace each large buffer by a ``SharedBuffer``; returns (items, segment names).

        The items go to ``import_buffers`` on the other side, in order; small ones are
        the ``PickleBuffer`` itself, to be sent through the pipe as before. The names
        are the segments created here: with ``single_receiver`` the receiver unlinks
        them; the sender should still ``release`` them once the message is known to
        be consumed or lost (a receiver that died before mapping cannot unlink). With
        ``single_receiver=False`` (one payload read by several workers) only
        ``release`` removes them.

        A single receiver's segment leaves this process's ledger once made, so that a
        sender that ends right after sending (a worker handing its result over) does not
        unlink it before it is mapped. ``keep_owned`` keeps it there, for a sender that
        outlives the message: if it is killed or ends before the receiver maps the
        segment (a pool's caller whose workers are stopped with it), its exit or
        SIGTERM release unlinks it.
        """
        items: list[Any] = []
        created: list[str] = []
        try:
            for buffer in buffers:
                raw = contiguous(buffer)
                if raw is None or self.threshold is None or raw.nbytes < max(self.threshold, 1):
                    self.inband_bytes += memoryview(buffer).nbytes
                    items.append(buffer)
                    continue
                name = self._names.next()
                _segments.create_and_write(name, [raw])
                created.append(name)
                if single_receiver and not keep_owned:
                    # The receiver unlinks it; the sender keeps only the duty to
                    # release it if the message is lost (see ``release``).
                    _segments.ledger.discard(name)
                self.shared_bytes += raw.nbytes
                items.append(SharedBuffer(name, raw.nbytes, single_receiver))
        except BaseException:
            self.release(created)
            raise
        return items, created

    @staticmethod
    def import_buffers(items: Sequence[Any], *, writable: bool) -> list[Any]:
        """The buffers to pass to ``pickle.loads(..., buffers=...)``.

        A ``SharedBuffer`` becomes a mapping of its segment (read-only unless
        ``writable``); anything else is passed through unchanged.
        """
        out: list[Any] = []
        for item in items:
            if isinstance(item, SharedBuffer):
                mm, _ = _segments.map_segment(
                    item.name, writable=writable, unlink=item.unlink_on_map
                )
                out.append(_view(mm, item.nbytes, writable=writable))
            else:
                out.append(item)
        return out

    @staticmethod
    def release(names: Sequence[str]) -> None:
        """Unlink segments this side created (those not unlinked yet by a receiver)."""
        for name in names:
            _segments.unlink_segment(name)

    def sweep(self) -> list[str]:
        """Unlink every segment under this transport's prefix."""
        return _segments.sweep(self.prefix)


def contiguous(buffer: Any) -> memoryview | None:
    """The buffer's bytes as one flat view, or None when it is not contiguous."""
    try:
        if isinstance(buffer, pickle.PickleBuffer):
            return buffer.raw()
        view = memoryview(buffer)
        return view.cast("B") if view.contiguous else None
    except BufferError:
        return None


def _view(mm: mmap.mmap, nbytes: int, *, writable: bool) -> memoryview:
    view = memoryview(mm)
    if nbytes != len(mm):
        view = view[:nbytes]
    return view if writable else view.toreadonly()
