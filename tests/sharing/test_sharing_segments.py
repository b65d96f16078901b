"""Segment naming, creation, mapping, unlinking and sweeping (no child processes)."""

from __future__ import annotations

import os
import pickle
import sys
import threading

import numpy as np
import pytest

from fermion.sharing import SharedBuffer, SharedMemoryTransport, _segments

pytestmark = pytest.mark.skipif(
    not _segments.posix_shm_available(), reason="needs POSIX shared memory"
)


def test_names_carry_the_owner_pid_and_count_up() -> None:
    names = _segments.SegmentNames(_segments.new_prefix())
    first, second = names.next(), names.next()
    assert first.startswith(f"fermion-{os.getpid()}-")
    assert first != second
    assert first.endswith("-0") and second.endswith("-1")


def test_a_prefix_without_fermion_is_refused() -> None:
    with pytest.raises(ValueError, match=r"segment prefix 'other-1' does not start with 'fermion'"):
        _segments.SegmentNames("other-1")


@pytest.mark.parametrize("write_syscall", [True, False], ids=["write", "mmap-copy"])
def test_create_map_and_unlink(monkeypatch: pytest.MonkeyPatch, write_syscall: bool) -> None:
    monkeypatch.setattr(_segments, "_write_syscall_supported", write_syscall)
    name = _segments.SegmentNames(_segments.new_prefix()).next()
    data = np.arange(1000, dtype=np.int32)
    size = _segments.create_and_write(name, [memoryview(data), memoryview(b"tail")])
    assert size == data.nbytes + 4
    assert _segments.segment_exists(name)
    assert name in _segments.ledger.owned()
    mm, fd = _segments.map_segment(name, writable=False, unlink=True)
    assert fd is None
    assert not _segments.segment_exists(name)  # unlinked, still mapped
    assert name not in _segments.ledger.owned()
    assert np.array_equal(np.frombuffer(mm, dtype=np.int32, count=1000), data)
    assert bytes(mm[-4:]) == b"tail"


def test_mapping_a_missing_segment_says_why() -> None:
    with pytest.raises(FileNotFoundError, match=r"segment 'fermion-0-gone-0' no longer exists"):
        _segments.map_segment("fermion-0-gone-0", writable=False, unlink=False)


def test_an_empty_segment_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot create an empty shared-memory segment"):
        _segments.create_and_write("fermion-0-x-0", [memoryview(b"")])


def test_sweep_removes_only_its_prefix() -> None:
    mine = _segments.SegmentNames(_segments.new_prefix())
    other = _segments.SegmentNames(_segments.new_prefix())
    made = [mine.next() for _ in range(3)]
    for name in made:
        _segments.create_and_write(name, [memoryview(b"x")])
    keep = other.next()
    _segments.create_and_write(keep, [memoryview(b"y")])
    assert sorted(_segments.sweep(mine.prefix)) == sorted(made)
    assert _segments.segment_exists(keep)
    assert _segments.sweep(mine.prefix) == []
    _segments.unlink_segment(keep)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lists /dev/shm")
def test_sweep_sees_segments_this_process_does_not_own() -> None:
    prefix = _segments.new_prefix()
    name = f"{prefix}-7"
    _segments.create_and_write(name, [memoryview(b"z")], track=False)
    assert name not in _segments.ledger.owned()
    assert _segments.sweep(prefix) == [name]


def test_ledger_release_all_unlinks_owned_segments_and_watched_prefixes() -> None:
    ledger = _segments.Ledger()
    owned = _segments.SegmentNames(_segments.new_prefix()).next()
    _segments.create_and_write(owned, [memoryview(b"a")], track=False)
    ledger.add(owned)
    watched = _segments.new_prefix()
    _segments.create_and_write(f"{watched}-0", [memoryview(b"b")], track=False)
    ledger.watch_prefix(watched)
    ledger.release_all()
    assert not _segments.segment_exists(owned)
    assert not _segments.segment_exists(f"{watched}-0")


def test_after_release_all_no_segment_is_made_and_an_added_one_is_unlinked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = _segments.Ledger()
    monkeypatch.setattr(_segments, "ledger", ledger)  # what create_and_write tracks into
    names = _segments.SegmentNames(_segments.new_prefix())
    ledger.release_all()  # the SIGTERM handler or the exit hook ran
    late = names.next()
    with pytest.raises(RuntimeError, match=rf"segment '{late}' was not created: this process is"):
        _segments.create_and_write(late, [memoryview(b"a")])
    assert not _segments.segment_exists(late)
    made = names.next()
    _segments.create_and_write(made, [memoryview(b"b")], track=False)
    ledger.add(made)  # e.g. a name handed over after the release: unlinked at once
    assert not _segments.segment_exists(made)


def test_release_all_waits_for_a_segment_being_created(monkeypatch: pytest.MonkeyPatch) -> None:
    """The release runs in the signal handler's thread while another creates a segment:
    the name is listed before the segment exists, so the release must wait for it."""
    ledger = _segments.Ledger()
    monkeypatch.setattr(_segments, "ledger", ledger)
    name = _segments.SegmentNames(_segments.new_prefix()).next()
    inside, go = threading.Event(), threading.Event()

    def create() -> None:
        with ledger.creating(name):
            inside.set()
            assert go.wait(10)
            _segments.create_and_write(name, [memoryview(b"c")], track=False)

    creator = threading.Thread(target=create)
    creator.start()
    assert inside.wait(10)
    releaser = threading.Thread(target=ledger.release_all)
    releaser.start()
    releaser.join(0.2)
    assert releaser.is_alive()  # held back while the segment is being made
    go.set()
    creator.join(10)
    releaser.join(10)
    assert not creator.is_alive() and not releaser.is_alive()
    assert not _segments.segment_exists(name)


def _make_segments(
    names: _segments.SegmentNames, start: threading.Barrier, refused: list[str]
) -> None:
    start.wait(10)
    try:
        for _ in range(200):
            _segments.create_and_write(names.next(), [memoryview(b"d")])
    except RuntimeError as error:
        refused.append(str(error))


def test_segments_made_by_threads_during_release_all_are_all_unlinked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for _ in range(20):
        ledger = _segments.Ledger()
        monkeypatch.setattr(_segments, "ledger", ledger)
        names = _segments.SegmentNames(_segments.new_prefix())
        start = threading.Barrier(4)
        refused: list[str] = []
        makers = [
            threading.Thread(target=_make_segments, args=(names, start, refused)) for _ in range(3)
        ]
        for thread in makers:
            thread.start()
        start.wait(10)
        ledger.release_all()
        for thread in makers:
            thread.join(30)
        assert not any(thread.is_alive() for thread in makers)
        assert _segments.list_segments(names.prefix) == []
        assert all("already released its segments" in message for message in refused)


# -- the transport, in one process ------------------------------------------------------


def _roundtrip(transport: SharedMemoryTransport, obj: object, *, writable: bool) -> object:
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    items, created = transport.export_buffers(buffers)
    try:
        return pickle.loads(data, buffers=transport.import_buffers(items, writable=writable))
    finally:
        transport.release(created)


def test_big_buffers_travel_as_segments_and_small_ones_in_band() -> None:
    transport = SharedMemoryTransport(_segments.new_prefix(), threshold=1024)
    big, small = np.arange(1000.0), np.arange(10.0)
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps([big, small], protocol=5, buffer_callback=buffers.append)
    items, created = transport.export_buffers(buffers)
    assert [type(i) for i in items] == [SharedBuffer, pickle.PickleBuffer]
    assert len(created) == 1 and _segments.segment_exists(created[0])
    assert transport.shared_bytes == big.nbytes and transport.inband_bytes == small.nbytes
    out_big, out_small = pickle.loads(data, buffers=transport.import_buffers(items, writable=False))
    assert not _segments.segment_exists(created[0])  # the single receiver unlinked it
    assert np.array_equal(out_big, big) and np.array_equal(out_small, small)
    assert not out_big.flags.writeable  # mapped read-only on request
    with pytest.raises(ValueError, match="read-only"):
        out_big[0] = 1


@pytest.mark.parametrize("keep_owned", [False, True], ids=["handed-over", "kept"])
def test_a_sent_segment_stays_owned_only_when_the_sender_keeps_it(keep_owned: bool) -> None:
    """A worker hands its result over (it may end before the caller maps it); a caller
    keeps what it sent, so that its exit or SIGTERM release unlinks what no worker mapped
    (with no moment between making and sending where nothing would)."""
    transport = SharedMemoryTransport(_segments.new_prefix(), threshold=0)
    buffers: list[pickle.PickleBuffer] = []
    pickle.dumps(np.arange(100.0), protocol=5, buffer_callback=buffers.append)
    _, created = transport.export_buffers(buffers, keep_owned=keep_owned)
    try:
        assert (created[0] in _segments.ledger.owned()) is keep_owned
    finally:
        transport.release(created)
    assert created[0] not in _segments.ledger.owned()


def test_received_array_lives_on_the_segment_without_a_copy() -> None:
    transport = SharedMemoryTransport(_segments.new_prefix(), threshold=0)
    out = _roundtrip(transport, np.ones((500, 300)), writable=True)
    assert isinstance(out, np.ndarray) and out.flags.writeable
    base = out
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    assert isinstance(base, memoryview)  # a view on the mapping, not a private copy
    out[0, 0] = 5.0
    assert out.sum() == 500 * 300 + 4


def test_non_contiguous_buffers_stay_in_band() -> None:
    transport = SharedMemoryTransport(_segments.new_prefix(), threshold=0)
    strided = np.arange(100.0)[::2]
    assert np.array_equal(_roundtrip(transport, strided, writable=True), strided)  # type: ignore[arg-type]
    assert transport.shared_bytes == 0


def test_threshold_none_keeps_everything_in_band() -> None:
    transport = SharedMemoryTransport(_segments.new_prefix(), threshold=None)
    _roundtrip(transport, np.ones(1 << 18), writable=True)
    assert transport.shared_bytes == 0 and transport.inband_bytes == 8 << 18


@pytest.mark.parametrize("threshold", [-1, 1.5, "big"])
def test_a_bad_threshold_is_refused(threshold: object) -> None:
    with pytest.raises(
        ValueError, match="threshold must be a non-negative number of bytes or None"
    ):
        SharedMemoryTransport(_segments.new_prefix(), threshold=threshold)  # type: ignore[arg-type]


def test_public_sweep_removes_a_dead_process_leftovers() -> None:
    import fermion.sharing

    prefix = _segments.new_prefix()
    _segments.create_and_write(f"{prefix}-0", [memoryview(b"q")], track=False)
    assert fermion.sharing.sweep(prefix) == [f"{prefix}-0"]


def test_sweeping_foreign_names_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"refusing to sweep 'sem\.mp-': fermion only sweeps its own"
    ):
        _segments.sweep_head("sem.mp-")


def test_configure_validates_the_threshold() -> None:
    from fermion.sharing import _connection

    with pytest.raises(
        ValueError, match="threshold must be a non-negative number of bytes or None"
    ):
        _connection.configure(threshold=-5)
