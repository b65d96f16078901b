"""How objects cross the pipe between the pool and its workers.

Every message is pickled once with cloudpickle (protocol 5), so lambdas, closures and
functions defined in ``__main__`` or a notebook travel by value. Large buffers (NumPy
arrays, ``bytearray``, ``memoryview``) are taken out of band through ``buffer_callback``
and travel after the pickle, one frame each, without being copied into it.

Wire format of one message on a ``multiprocessing.connection.Connection``::

    frame 0:    4-byte big-endian count N of out-of-band buffers, then the pickle
    then:       whatever ``send_out_of_band`` writes for the N buffers (today: one frame
                with their sizes, then one frame per buffer), read by ``recv_out_of_band``

The out-of-band transport is the one pair ``send_out_of_band``/``recv_out_of_band``:
a shared-memory transport replaces those two functions (e.g. write big buffers into
segments and send their names; map them on the other side) and nothing else changes,
as long as ``recv_out_of_band`` returns objects that support the buffer protocol.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

# -- shared-memory transport (fermion.sharing, issue 6) -----------------------------------
from fermion.sharing import _connection as _shared_memory

# -- end shared-memory transport ---------------------------------------------------------

__all__ = [
    "Encoded",
    "decode",
    "dumps",
    "encode",
    "loads",
    "plain_head",
    "prepare_caller",
    "recv",
    "recv_frames",
    "recv_out_of_band",
    "release_worker_segments",
    "send",
    "send_out_of_band",
]

PROTOCOL = 5
_COUNT = struct.Struct("!I")
_NO_BUFFERS = _COUNT.pack(0)


class Encoded:
    """A pickled message ready to send: the first frame and the out-of-band buffers."""

    __slots__ = ("buffers", "head")

    def __init__(self, head: memoryview, buffers: list[pickle.PickleBuffer]) -> None:
        self.head = head
        self.buffers = buffers

    @property
    def nbytes(self) -> int:
        return self.head.nbytes + sum(memoryview(b).nbytes for b in self.buffers)


#: Types whose pickles are the same with the plain pickler as with cloudpickle, that
#: never produce an out-of-band buffer and never hold a shared array (exact types only:
#: a subclass may reduce itself any way it likes).
_PLAIN_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
_PLAIN_CONTAINERS = frozenset({tuple, list, dict})
#: The fast path walks at most this many objects; bigger messages take the full path,
#: whose cost then dwarfs the few microseconds the fast path saves.
_PLAIN_LIMIT = 64


def _is_plain(obj: Any) -> bool:
    """Whether ``obj`` is made only of plain scalars in tuples, lists and dicts, with at
    most ``_PLAIN_LIMIT`` objects in all (the pool's control messages and small tasks)."""
    todo = [obj]
    seen = 0
    while todo:
        item = todo.pop()
        seen += 1
        if seen > _PLAIN_LIMIT:
            return False
        kind = type(item)
        if kind in _PLAIN_SCALARS:
            continue
        if kind in _PLAIN_CONTAINERS:
            if kind is dict:
                todo.extend(item.keys())
                todo.extend(item.values())
            else:
                todo.extend(item)
            continue
        return False
    return True


def encode(obj: Any) -> Encoded:
    """Pickle ``obj`` with cloudpickle, taking large buffers out of band.

    Small messages of plain data (see ``_is_plain``) take a fast path: the C pickler,
    no cloudpickle and no shared-memory hooks (they can hold no buffer and no shared
    array), only the caller's periodic sweep of dead workers' segments.

    Raises whatever the pickler raises; callers turn that into SerializationError.
    """
    if _is_plain(obj):
        _shared_memory.sweep_dead_workers_if_due()  # shared-memory transport (issue 6)
        return Encoded(memoryview(plain_head(obj)), [])
    buffers: list[pickle.PickleBuffer] = []
    out = io.BytesIO()
    out.write(b"\0\0\0\0")  # room for the buffer count: no copy to prepend it later
    with _shared_memory.dumps_context():  # shared-memory transport (issue 6)
        cloudpickle.CloudPickler(out, protocol=PROTOCOL, buffer_callback=buffers.append).dump(obj)
    head = out.getbuffer()
    _COUNT.pack_into(head, 0, len(buffers))
    return Encoded(head, buffers)


def plain_head(obj: Any) -> bytes:
    """The whole message for plain data (see ``_is_plain``): a count of 0 out-of-band
    buffers, then the pickle (one small copy, cheaper than a Pickler on a BytesIO). The
    same object always gives the same bytes."""
    return _NO_BUFFERS + pickle.dumps(obj, protocol=PROTOCOL)


def decode(head: bytes | memoryview, buffers: Sequence[Any]) -> Any:
    """The inverse of ``encode``: ``head`` is frame 0 including its count."""
    return pickle.loads(memoryview(head)[_COUNT.size :], buffers=buffers)


def send(conn: Connection, message: Encoded, *, until: Future[Any] | None = None) -> None:
    """Write one encoded message: frame 0, then its out-of-band buffers.

    ``until``: the future of the task the message carries (shared-memory transport,
    issue 16): the copies of writable arrays it took serve later tasks until it is done.
    """
    conn.send_bytes(message.head)
    if message.buffers:
        send_out_of_band(conn, message.buffers, until=until)


def recv(conn: Connection) -> Any:
    """Read and unpickle one message written by ``send``.

    Raises EOFError/OSError when the other side is gone, or the unpickler's error
    (the frames are consumed either way, so the stream stays in step).
    """
    return decode(*recv_frames(conn))


def recv_frames(conn: Connection) -> tuple[bytes, list[Any]]:
    """Read one message written by ``send`` without unpickling it: ``(head, buffers)``
    for ``decode``. Runs no code of the message's objects, so a message read ahead of
    its turn cannot crash the reader before then. Raises EOFError/OSError when the
    other side is gone."""
    try:
        head = conn.recv_bytes()
    except EOFError:  # shared-memory transport (issue 6): sweep once the sender is gone
        _shared_memory.connection_closed(conn)
        raise
    (count,) = _COUNT.unpack_from(head, 0)
    return head, (recv_out_of_band(conn, count) if count else [])


# -- the out-of-band transport: replace these two to move buffers another way ---------


def send_out_of_band(
    conn: Connection, buffers: Sequence[pickle.PickleBuffer], *, until: Future[Any] | None = None
) -> None:
    """Send the buffers: each one from ``fermion.sharing``'s threshold (1 MiB) up is
    placed in a shared-memory segment (one copy per distinct array) and only its name
    travels; smaller ones go through the pipe, one frame each, straight from their
    memory. (Shared-memory transport, issues 6 and 16: see ``fermion.sharing._connection``
    for the wire format.)"""
    _shared_memory.send_buffers(conn, buffers, until=until)


def recv_out_of_band(conn: Connection, count: int) -> list[Any]:
    """Receive ``count`` buffers sent by ``send_out_of_band``, in order: result segments
    are mapped (writable, no copy) and unlinked at once, argument copies are mapped
    read-only (tasks share them), pipe frames are read into writable ``bytearray``\\ s."""
    return _shared_memory.recv_buffers(conn, count)


def prepare_caller() -> None:
    """Shared-memory transport (issue 16): call from the thread that creates a pool
    (usually the main thread, the only one that may set signal handlers), so that a
    SIGTERM of the caller removes its segments before it ends the process."""
    _shared_memory.prepare_caller()


def release_worker_segments(pid: int, task_conn: Connection) -> None:
    """Shared-memory transport (issue 6): call once a worker has exited and its result
    pipe is drained. Unlinks the argument segments sent on ``task_conn`` that the
    worker never mapped and the result segments it made but never handed over."""
    _shared_memory.forget_connection(task_conn)
    _shared_memory.sweep_process(pid)


# -- plain helpers ----------------------------------------------------------------------


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` in band with cloudpickle (functions, initializers)."""
    return cloudpickle.dumps(obj, protocol=PROTOCOL)


def loads(data: bytes) -> Any:
    """Unpickle bytes made by ``dumps``."""
    return pickle.loads(data)
