"""The caller's argument copies and the warm segments under them, in one process.

The worker's half (``WorkerAreas``) runs in this process too: a view it hands out is
what a task would see, and dropping the view is the task ending.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from fermion.sharing import _copies, _segments
from fermion.sharing._areas import WorkerAreas

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /dev/shm")

N = 1 << 17  # float64s: 1 MiB


class Conn:
    """Stands in for a task connection (weakly referenced, may be closed)."""

    closed = False


@pytest.fixture
def copies() -> Iterator[_copies.ArgumentCopies]:
    prefix = _segments.process_prefix() + "-t"
    book = _copies.ArgumentCopies(_segments.SegmentNames(prefix))
    yield book
    book.close()
    assert _segments.list_segments(prefix) == []


def send(
    copies: _copies.ArgumentCopies, worker: WorkerAreas, conn: Conn, array: np.ndarray
) -> tuple[np.ndarray, _copies.Lease | None]:
    """What one task on ``conn``'s worker sees of ``array``, and its lease."""
    raw = memoryview(array).cast("B")
    name, ref, _, lease = copies.place(id(conn), conn, raw, array)
    view = worker.buffer(name, raw.nbytes, ref)
    return np.frombuffer(view, dtype=array.dtype), lease


def stats(copies: _copies.ArgumentCopies) -> dict[str, int]:
    return copies.statistics()


def test_the_same_writable_array_is_copied_once_while_its_tasks_run(
    copies: _copies.ArgumentCopies,
) -> None:
    worker, conn = WorkerAreas(), Conn()
    array = np.arange(N, dtype=np.float64)
    seen = [send(copies, worker, conn, array) for _ in range(5)]
    assert stats(copies)["copies_made"] == 1 and stats(copies)["copies_reused"] == 4
    assert all(np.array_equal(view, array) for view, _ in seen)
    view = seen[0][0]
    assert not view.flags.writeable  # tasks share the copy: read-only
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 1.0


def test_a_writable_array_changed_after_its_tasks_finished_is_copied_again(
    copies: _copies.ArgumentCopies,
) -> None:
    worker, conn = WorkerAreas(), Conn()
    array = np.zeros(N)
    view, lease = send(copies, worker, conn, array)
    assert float(view.sum()) == 0.0
    assert lease is not None
    lease.release()  # the task is done
    del view
    array[:] = 1.0
    view, lease = send(copies, worker, conn, array)
    assert float(view.sum()) == N  # the array as it was when this task was sent
    assert stats(copies)["copies_made"] == 2
    # ... into the same warm segment: its only view died before the second copy.
    assert stats(copies)["segments_created"] == 1 and stats(copies)["segments_recycled"] == 1


def test_a_read_only_array_is_copied_once_for_as_long_as_it_lives(
    copies: _copies.ArgumentCopies,
) -> None:
    worker, conn = WorkerAreas(), Conn()
    table = np.arange(N, dtype=np.float64)
    table.flags.writeable = False
    for _ in range(3):  # three maps, each task done before the next
        view, lease = send(copies, worker, conn, table)
        assert lease is None and np.array_equal(view, table)
        del view
    assert stats(copies)["copies_made"] == 1
    del table
    gc.collect()
    # Dropped by the caller and used by no task: its segment is free and recycled.
    assert stats(copies)["free_segment_bytes"] >= N * 8
    other = np.ones(N)
    view, _ = send(copies, worker, conn, other)
    assert float(view.sum()) == N
    assert stats(copies)["segments_created"] == 1


def test_a_read_only_array_made_writable_again_is_copied_again(
    copies: _copies.ArgumentCopies,
) -> None:
    worker, conn = WorkerAreas(), Conn()
    table = np.zeros(N)
    table.flags.writeable = False
    send(copies, worker, conn, table)
    table.flags.writeable = True
    table[:] = 2.0
    view, _ = send(copies, worker, conn, table)
    assert float(view.sum()) == 2.0 * N
    assert stats(copies)["copies_made"] == 2


def test_a_read_only_view_of_a_writable_array_is_not_trusted() -> None:
    base = np.zeros(8)
    view = base[:]
    view.flags.writeable = False
    assert not _copies.deeply_read_only(view)  # base[:] = 1 would change it
    frozen = np.zeros(8)
    frozen.flags.writeable = False
    assert _copies.deeply_read_only(frozen[2:])
    assert _copies.deeply_read_only(np.frombuffer(b"12345678", dtype=np.uint8))
    assert not _copies.deeply_read_only(np.frombuffer(bytearray(8), dtype=np.uint8))


def test_a_segment_a_worker_still_sees_is_never_overwritten(
    copies: _copies.ArgumentCopies,
) -> None:
    worker, conn = WorkerAreas(), Conn()
    kept, lease = send(copies, worker, conn, np.full(N, 7.0))  # user code keeps it
    assert lease is not None
    lease.release()
    view, lease = send(copies, worker, conn, np.full(N, 1.0))
    assert float(kept.sum()) == 7.0 * N and float(view.sum()) == N
    assert stats(copies)["segments_created"] == 2  # the kept one was not refilled
    assert lease is not None
    lease.release()
    del kept, view
    send(copies, worker, conn, np.full(N, 3.0))
    assert stats(copies)["segments_created"] == 2  # both free again: one recycled


def test_a_segment_busy_on_any_worker_is_not_reused(copies: _copies.ArgumentCopies) -> None:
    first, second = (WorkerAreas(), Conn()), (WorkerAreas(), Conn())
    array = np.full(N, 5.0)
    view_a, lease_a = send(copies, *first, array)
    view_b, lease_b = send(copies, *second, array)  # the same copy, on another worker
    assert stats(copies)["copies_made"] == 1 and stats(copies)["boards"] == 2
    assert lease_a is not None and lease_b is not None
    lease_a.release()
    lease_b.release()
    del view_a  # the first worker is done with it, the second is not
    send(copies, *first, np.full(N, 6.0))
    assert float(view_b.sum()) == 5.0 * N
    assert stats(copies)["segments_created"] == 2


def test_free_segments_are_bounded_and_returned_when_idle(
    copies: _copies.ArgumentCopies, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_copies, "MAX_FREE_SEGMENTS", 1)
    worker, conn = WorkerAreas(), Conn()
    held = [send(copies, worker, conn, np.full(N, float(i))) for i in range(3)]
    assert stats(copies)["segments_created"] == 3
    leases = [lease for _, lease in held]
    held.clear()  # the tasks are done: their views die
    for lease in leases:
        assert lease is not None
        lease.release()
    copies.trim()
    assert stats(copies)["segment_bytes"] <= 2 * N * 8  # one free kept warm, at most
    monkeypatch.setattr(_copies, "FREE_IDLE_S", 0.0)
    copies.trim()
    assert stats(copies)["segment_bytes"] == 0
    assert _segments.list_segments(_segments.process_prefix() + "-t") == []


def test_everything_is_returned_when_the_last_connection_closes(
    copies: _copies.ArgumentCopies,
) -> None:
    worker, conn = WorkerAreas(), Conn()
    table = np.ones(N)
    table.flags.writeable = False
    view, _ = send(copies, worker, conn, table)
    del view
    assert stats(copies)["segment_bytes"] > 0
    conn.closed = True
    copies.forget_closed()
    after = stats(copies)
    assert after["segment_bytes"] == 0 and after["boards"] == 0
    assert _segments.list_segments(_segments.process_prefix() + "-t") == []


def test_copies_of_read_only_arrays_are_bounded(
    copies: _copies.ArgumentCopies, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_copies, "MAX_KEPT_BYTES", 2 * N * 8)
    worker, conn = WorkerAreas(), Conn()
    tables = [np.full(N, float(i)) for i in range(4)]
    for table in tables:
        table.flags.writeable = False
        view, _ = send(copies, worker, conn, table)
        del view
    copies.trim()
    # The two most recent are kept for later tasks; the older ones were let go.
    assert stats(copies)["segment_bytes"] - stats(copies)["free_segment_bytes"] <= 2 * N * 8
    before = stats(copies)["copies_made"]
    send(copies, worker, conn, tables[3])
    assert stats(copies)["copies_made"] == before  # still kept
    send(copies, worker, conn, tables[0])
    assert stats(copies)["copies_made"] == before + 1  # copied again
