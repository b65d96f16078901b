"""Out-of-band pickle buffers over a ``multiprocessing`` Connection, big ones via shared memory.

The process pool's codec calls ``send_buffers``/``recv_buffers`` for the buffers that
pickle protocol 5 took out of band. Wire format after the pickle frame:

    one frame:  a small pickle, one entry per buffer: its size (it follows in-band, as
                one frame of its own) or a ``SharedBuffer`` (its bytes are in a segment)
    then:       one frame per in-band buffer, straight from its memory

Arguments (caller -> worker) go into the caller's copies (``_copies``): one copy per
distinct array, shared by the tasks that pass it and by every worker, in segments that
are recycled warm once no worker uses them (``_areas`` is the worker's half). Results
(worker -> caller) go into fresh segments, which the caller then owns.

Who removes what (so that /dev/shm stays clean with no help from users):

- the receiver maps a result segment (or a board) and unlinks its name at once;
- argument copies keep their names while the caller keeps them (several workers may
  map them); the caller unlinks them when it returns them to the OS, and at exit;
- the caller remembers the argument segments it sent on each connection until the
  worker has unlinked them; ``forget_connection`` unlinks what a dead worker never
  mapped, and at exit the caller unlinks whatever is still pending;
- a worker hands its result segments over on send; if it dies with one half-made,
  ``sweep_process(pid)`` removes it (the pool calls it once the worker's pipe is
  drained), and the caller also sweeps at exit the workers' prefixes it has seen.

This module knows nothing about the pool; the pool's ``_codec`` imports it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import secrets
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

from fermion.sharing import _areas, _copies, _segments
from fermion.sharing._ownership import owned_arrays_by_content
from fermion.sharing._transport import (
    DEFAULT_THRESHOLD,
    SharedBuffer,
    SharedMemoryTransport,
    contiguous,
)

__all__ = [
    "ConnectionLike",
    "configure",
    "connection_closed",
    "forget_connection",
    "prepare_caller",
    "recv_buffers",
    "send_buffers",
    "statistics",
    "sweep_dead_workers",
    "sweep_dead_workers_if_due",
    "sweep_process",
]


class ConnectionLike(Protocol):
    def send_bytes(self, buf: Any, offset: int = ..., size: int | None = ...) -> None: ...
    def recv_bytes(self, maxlength: int | None = ...) -> bytes: ...
    def recv_bytes_into(self, buf: Any, offset: int = ...) -> int: ...


def _worker_head(caller_pid: int, worker_pid: int | None = None) -> str:
    """Names of segments a worker of ``caller_pid`` made: ``fermion-<caller>-w<worker>-``."""
    head = f"{_segments.NAME_PREFIX}-{caller_pid}-w"
    return head if worker_pid is None else f"{head}{worker_pid}-"


class _ProcessState:
    """This process's transport and the segments it sent that may still be unmapped.

    In a worker (a ``multiprocessing`` child) segments are named after the *caller*:
    ``fermion-<caller pid>-w<worker pid>-<token>-<n>``, so the caller can sweep what its
    workers left behind even when it never heard of them: at exit (normal, Ctrl-C) it
    sweeps ``fermion-<its pid>-w*``, and after a worker died, that worker's names.
    """

    def __init__(self, threshold: int | None) -> None:
        self.pid = os.getpid()
        parent = multiprocessing.parent_process()
        parent_pid = parent.pid if parent is not None else None
        # A pool worker hands its segments over; the caller keeps them until mapped.
        self.hands_over = parent_pid is not None
        if parent_pid is not None:
            prefix = _worker_head(parent_pid, self.pid) + secrets.token_hex(3)
        else:
            prefix = _segments.process_prefix() + "-b"
        # Every process may run a pool of its own (a worker too): sweep what its
        # workers left behind at exit.
        _segments.ledger.watch_prefix(_worker_head(self.pid), whole_word=False)
        self.transport = SharedMemoryTransport(prefix, threshold=threshold)
        self.lock = threading.Lock()
        self.pending: dict[int, list[str]] = {}  # id(connection) -> names sent on it
        self.watched: set[int] = set()  # connections with a finalizer
        # The caller's argument copies, for every connection (caller only).
        self.copies = _copies.ArgumentCopies(
            _segments.SegmentNames(_segments.process_prefix() + "-a")
        )
        self.next_dead_worker_sweep = 0.0


_state: _ProcessState | None = None
_state_lock = threading.Lock()
_threshold: int | None = DEFAULT_THRESHOLD


def configure(*, threshold: int | None = DEFAULT_THRESHOLD) -> None:
    """Set this process's threshold in bytes (``None``: every buffer through the pipe).

    Affects what this process sends from now on (tests and benchmarks use it).
    """
    global _state, _threshold
    if threshold is not None and (not isinstance(threshold, int) or threshold < 0):
        raise ValueError(
            f"threshold must be a non-negative number of bytes or None, not {threshold!r}"
        )
    with _state_lock:
        _threshold = threshold
        if _state is not None:
            _state.transport.threshold = threshold if _segments.posix_shm_available() else None


def _get_state() -> _ProcessState:
    global _state
    state = _state  # fast path, no lock: set once per process, replaced after a fork
    if state is not None and state.pid == os.getpid():
        return state
    with _state_lock:
        if _state is None or _state.pid != os.getpid():
            _state = _ProcessState(_threshold)
        return _state


def statistics() -> dict[str, int]:
    """Bytes this process sent through shared memory and in-band, pending segments, and
    the argument copies: made / reused, segments created / recycled, their bytes."""
    state = _get_state()
    state.copies.forget_closed()
    with state.lock:
        pending = sum(len(names) for names in state.pending.values())
    return {
        "shared_bytes": state.transport.shared_bytes,
        "inband_bytes": state.transport.inband_bytes,
        "pending_segments": pending,
        **state.copies.statistics(),
    }


def send_buffers(
    conn: ConnectionLike, buffers: Sequence[pickle.PickleBuffer], *, until: Any = None
) -> None:
    """Send out-of-band buffers on ``conn``: big ones as segments, small ones in-band.

    ``until``: a ``concurrent.futures.Future`` that is done when the receiver's task
    is; copies of writable arrays serve later tasks only until then (without it, this
    message's copies serve no other).
    """
    state = _get_state()
    leases: list[_copies.Lease] = []
    if state.hands_over or state.transport.threshold is None or not _areas.supported():
        items, created = state.transport.export_buffers(buffers, keep_owned=not state.hands_over)
    else:
        items, created = _export_to_copies(state, conn, buffers, leases)
    if leases:
        if until is None:
            _release(leases)
        else:
            until.add_done_callback(lambda _future: _release(leases))
    try:
        layout = [item if isinstance(item, SharedBuffer) else _nbytes(item) for item in items]
        conn.send_bytes(pickle.dumps(layout, protocol=pickle.HIGHEST_PROTOCOL))
        for item in items:
            if not isinstance(item, SharedBuffer):
                conn.send_bytes(_flat(item))
    except BaseException:
        _release(leases)
        _abandon(state, conn, items)
        state.transport.release(created)
        raise
    if not created:
        return
    if state.hands_over:
        return  # the caller now owns them (and sweeps our prefix if it never maps them)
    with state.lock:
        _prune(state.pending)
        state.pending.setdefault(id(conn), []).extend(created)
    _watch(state, conn)  # the names stay in the ledger: unlinked at exit if never mapped


def _export_to_copies(
    state: _ProcessState,
    conn: ConnectionLike,
    buffers: Sequence[pickle.PickleBuffer],
    leases: list[_copies.Lease],
) -> tuple[list[Any], list[str]]:
    """Like ``export_buffers``, but big buffers go into the caller's argument copies
    (see ``_copies``): one copy per distinct array, in warm recycled segments."""
    transport = state.transport
    threshold = max(transport.threshold or 0, 1)
    copies = state.copies
    copies.forget_closed()
    _watch(state, conn)
    items: list[Any] = []
    created: list[str] = []
    try:
        for buffer in buffers:
            raw = contiguous(buffer)
            if raw is None or raw.nbytes < threshold:
                transport.inband_bytes += memoryview(buffer).nbytes
                items.append(buffer)
                continue
            try:
                name, ref, new_names, lease = copies.place(id(conn), conn, raw, _source(buffer))
            except _copies.NoSlotError:  # every slot busy: a one-off segment
                more, names = transport.export_buffers([buffer], keep_owned=True)
                items += more
                created += names
                continue
            created += new_names
            if lease is not None:
                leases.append(lease)
            transport.shared_bytes += raw.nbytes
            items.append(SharedBuffer(name, raw.nbytes, unlink_on_map=False, area=ref))
    except BaseException:
        _release(leases)
        _abandon(state, conn, items)
        transport.release(created)
        raise
    return items, created


def _source(buffer: Any) -> Any:
    """The object whose memory a pickle buffer shows (an ndarray): the copy's identity."""
    try:
        return memoryview(buffer).obj
    except (TypeError, BufferError):  # pragma: no cover - not a buffer after all
        return buffer


def _release(leases: Sequence[_copies.Lease]) -> None:
    for lease in leases:
        lease.release()


def _abandon(state: _ProcessState, conn: Any, items: Sequence[Any]) -> None:
    """A message carrying copies failed to leave (the connection is broken, or a new
    board's name was released with it): start over with a fresh board next time."""
    if any(isinstance(item, SharedBuffer) and item.area is not None for item in items):
        state.copies.forget_connection(id(conn))


def recv_buffers(conn: ConnectionLike, count: int) -> list[Any]:
    """Receive ``count`` buffers sent by ``send_buffers``, in order.

    A result segment is mapped writable (it holds a copy made for this receiver
    alone) and its name removed at once; an argument copy is mapped read-only (other
    tasks share it, see ``_areas``). The arrays rebuilt on them share their memory,
    released when the last of them is garbage-collected. In-band buffers are read
    into fresh ``bytearray``\\ s (writable).
    """
    layout = pickle.loads(conn.recv_bytes())
    if len(layout) != count:
        raise ValueError(
            f"out-of-band frame announces {len(layout)} buffers where the message has {count}"
        )
    buffers: list[Any] = []
    shared: list[SharedBuffer] = []
    for entry in layout:
        if isinstance(entry, SharedBuffer):
            shared.append(entry)
            buffers.append(entry)
            continue
        buffer = bytearray(entry)
        if entry:
            conn.recv_bytes_into(buffer)
        else:
            conn.recv_bytes()
        buffers.append(buffer)
    if shared:
        state = _get_state()
        if not state.hands_over:
            _watch(state, conn)
        # Map all of them even if one fails, so that none is left with a name.
        mapped: list[Any] = []
        error: BaseException | None = None
        for item in buffers:
            if isinstance(item, SharedBuffer):
                try:
                    if item.area is not None:
                        area = _areas.worker_areas()
                        mapped.append(area.buffer(item.name, item.nbytes, item.area))
                        continue
                    mapped.extend(SharedMemoryTransport.import_buffers([item], writable=True))
                except BaseException as exc:
                    error = error or exc
                    if item.area is None:  # an argument copy is the caller's to unlink
                        _segments.unlink_segment(item.name)
                    mapped.append(None)
            else:
                mapped.append(item)
        if error is not None:
            raise error
        buffers = mapped
    return buffers


def prepare_caller() -> None:
    """A pool is being created in this thread: make SIGTERM remove this process's
    segments first (from the main thread; see ``_segments.install_sigterm_release``).
    The pool's own thread, which makes the argument copies, cannot install it."""
    _get_state()
    _segments.install_sigterm_release()


def forget_connection(conn: Any) -> list[str]:
    """Unlink the segments sent on ``conn`` that its receiver never mapped.

    For the pool, when the worker at the other end of ``conn`` is gone.
    """
    return _forget(id(conn))


def _forget(key: int) -> list[str]:
    state = _get_state()
    with state.lock:
        names = state.pending.pop(key, [])
        state.watched.discard(key)
    state.copies.forget_connection(key)
    return [name for name in names if _segments.unlink_segment(name)]


def sweep_process(pid: int) -> list[str]:
    """Unlink every segment process ``pid`` made, once it is dead: its own
    (``fermion-<pid>-*``) and those it made as a worker of this process."""
    pid = int(pid)
    removed = _segments.sweep(f"{_segments.NAME_PREFIX}-{pid}")
    removed += _segments.sweep_head(_worker_head(os.getpid(), pid))
    return removed


def sweep_dead_workers() -> list[str]:
    """Unlink the segments of every worker of this process that no longer runs.

    Runs by itself when a connection that carried buffers is dropped (the pool drops
    a dead worker's pipes), so a killed worker's half-made segments disappear even if
    nobody calls ``sweep_process``.
    """
    head = _worker_head(os.getpid())
    removed: list[str] = []
    for pid in {_pid_of(name[len(head) :]) for name in _segments.names_starting_with(head)}:
        if pid is not None and not _is_running(pid):
            removed += _segments.sweep_head(_worker_head(os.getpid(), pid))
    return removed


def connection_closed(conn: Any) -> None:
    """The other end of ``conn`` is gone (EOF): sweep the segments of workers that no
    longer run now, and again once ``conn`` is dropped (a dying worker may not have
    been reaped yet)."""
    state = _get_state()
    if state.hands_over:
        return
    sweep_dead_workers()
    _watch(state, conn)


def _watch(state: _ProcessState, conn: Any) -> None:
    """When ``conn`` is dropped: release what was sent on it, sweep dead workers."""
    key = id(conn)
    with state.lock:
        if key in state.watched:
            return
        state.watched.add(key)
    try:
        weakref.finalize(conn, _connection_dropped, key, state.pid)
    except TypeError:  # not weak-referenceable: only the explicit calls clean up
        with state.lock:
            state.watched.discard(key)


def _connection_dropped(key: int, pid: int) -> None:
    if pid != os.getpid():
        return
    _forget(key)
    sweep_dead_workers()


def _pid_of(rest: str) -> int | None:
    digits = rest.split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def _is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is dead: it runs no code)."""
    import psutil  # only the caller sweeps: workers start without it

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # pragma: no cover - e.g. access denied: leave it alone
        return True


#: How often (seconds) the caller looks for segments of workers that died.
DEAD_WORKER_SWEEP_INTERVAL = 0.2


def dumps_context() -> Any:
    """A context manager to pickle every message under.

    In a pool worker, shared arrays the worker owns go by content (it drops them right
    after sending, which would free them before the caller opens them). In the caller,
    it is also when segments of workers that died (SIGKILL, OOM) are swept, at most
    every ``DEAD_WORKER_SWEEP_INTERVAL`` seconds: the pool sends its next message soon
    after it replaced a dead worker.
    """
    state = _get_state()
    if state.hands_over:
        return owned_arrays_by_content()
    _sweep_if_due(state)
    return contextlib.nullcontext()


def sweep_dead_workers_if_due() -> None:
    """The caller's periodic sweep of ``dumps_context``, alone: for messages pickled
    without it (the codec's fast path for plain data, which can hold no shared array).
    Does nothing in a pool worker."""
    state = _get_state()
    if not state.hands_over:
        _sweep_if_due(state)


def _sweep_if_due(state: _ProcessState) -> None:
    now = time.monotonic()
    if now >= state.next_dead_worker_sweep:
        state.next_dead_worker_sweep = now + DEAD_WORKER_SWEEP_INTERVAL
        sweep_dead_workers()
        state.copies.trim()  # free segments idle too long go back to the OS


def _prune(pending: dict[int, list[str]]) -> None:
    """Forget the sent segments that their receivers have mapped (and so unlinked)."""
    for key in list(pending):
        still = []
        for name in pending[key]:
            if _segments.segment_exists(name):
                still.append(name)
            else:
                _segments.ledger.discard(name)
        if still:
            pending[key] = still
        else:
            del pending[key]


def _nbytes(buffer: Any) -> int:
    return memoryview(buffer).nbytes


def _flat(buffer: Any) -> memoryview:
    try:
        return buffer.raw() if isinstance(buffer, pickle.PickleBuffer) else memoryview(buffer)
    except BufferError:  # not contiguous: one copy into a contiguous block
        return memoryview(bytes(memoryview(buffer)))
