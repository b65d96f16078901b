"""shared_array, SharedValue and SharedCounter, within one process and across processes."""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import threading
from typing import Any

import _sharing_children as children
import numpy as np
import pytest

import fermion
from fermion.sharing import SharedArray, SharedCounter, SharedValue, _segments, _values
from fermion.sharing._array import owned_arrays_by_content

pytestmark = pytest.mark.skipif(
    not _segments.posix_shm_available(), reason="needs POSIX shared memory"
)

START_METHODS = [m for m in ("forkserver", "spawn") if m in multiprocessing.get_all_start_methods()]


def _join(process: Any) -> None:
    process.join(60)
    if process.is_alive():
        process.kill()
        process.join(5)
        pytest.fail(f"child {process.pid} did not finish")
    assert process.exitcode == 0


# -- shared_array ------------------------------------------------------------------------


def test_shared_array_is_a_zero_filled_ndarray_in_a_fermion_segment() -> None:
    array = fermion.shared_array((4, 5), np.int32)
    assert isinstance(array, np.ndarray) and isinstance(array, SharedArray)
    assert array.shape == (4, 5) and array.dtype == np.int32
    assert not array.any()
    assert array.is_shared and array.segment_name is not None
    assert _segments.segment_exists(array.segment_name)


def test_shared_array_pickles_by_name_and_views_stay_views() -> None:
    array = fermion.shared_array((6, 8))
    view = array[1:5, ::3]
    data = pickle.dumps(view, protocol=5)
    assert len(data) < 400  # the name, shape and strides: not 6 * 8 * 8 bytes of content
    again = pickle.loads(data)
    assert isinstance(again, SharedArray) and again.segment_name == array.segment_name
    again[0, 1] = 42.0
    assert array[1, 3] == 42.0


def test_new_arrays_made_from_a_shared_one_pickle_by_content() -> None:
    array = fermion.shared_array(10)
    derived = array + 1
    assert not derived.is_shared and derived.segment_name is None
    again = pickle.loads(pickle.dumps(derived))
    assert type(again) is np.ndarray and again.sum() == 10


def test_owned_arrays_go_by_content_when_asked() -> None:
    array = fermion.shared_array(4)
    with owned_arrays_by_content():
        again = pickle.loads(pickle.dumps(array))
    assert type(again) is np.ndarray


def test_read_only_views_arrive_read_only() -> None:
    array = fermion.shared_array(4)
    view = array.view()
    view.flags.writeable = False
    assert not pickle.loads(pickle.dumps(view)).flags.writeable


def test_shared_copy_copies_content() -> None:
    source = np.arange(12.0).reshape(3, 4)
    copy = fermion.sharing.shared_copy(source)
    assert copy.is_shared and np.array_equal(copy, source)


def test_segment_is_unlinked_when_the_owner_drops_the_array() -> None:
    array = fermion.shared_array(1000)
    name = array.segment_name
    view = array[10:]
    del array
    gc.collect()
    assert name is not None and _segments.segment_exists(name)  # the view still uses it
    del view
    gc.collect()
    assert not _segments.segment_exists(name)


@pytest.mark.parametrize(
    ("shape", "dtype", "error", "match"),
    [
        ((2, -1), float, ValueError, r"shape \(2, -1\) has a negative dimension"),
        ("big", float, TypeError, "shape must be an int or a sequence of ints, not 'big'"),
        (3, object, TypeError, "cannot hold dtype object"),
    ],
)
def test_shared_array_validates_its_arguments(
    shape: Any, dtype: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        fermion.shared_array(shape, dtype)


@pytest.mark.parametrize("method", START_METHODS)
def test_workers_write_into_a_shared_array_the_caller_reads(method: str) -> None:
    context = multiprocessing.get_context(method)
    array = fermion.shared_array((6, 1000), np.float64)
    workers = [
        context.Process(target=children.fill_rows, args=(array, rows))
        for rows in ([0, 2, 4], [1, 3, 5])
    ]
    for w in workers:
        w.start()
    for w in workers:
        _join(w)
    assert np.array_equal(array[:, 0], np.arange(6.0))
    assert array.sum() == 1000 * 15


@pytest.mark.parametrize("method", START_METHODS)
def test_a_worker_reads_a_slice_by_name(method: str) -> None:
    context = multiprocessing.get_context(method)
    array = fermion.shared_array(100)
    array[:] = 1.0
    here, there = context.Pipe()
    worker = context.Process(target=children.sum_shared, args=(array[50:], there))
    worker.start()
    assert here.poll(60)
    total, name, writable = here.recv()
    _join(worker)
    assert (total, name, writable) == (50.0, array.segment_name, True)


# -- SharedValue / SharedCounter -----------------------------------------------------------


def test_counter_operations() -> None:
    counter = SharedCounter(5)
    assert counter.add(3) == 8 and counter.increment() == 9 and counter.decrement() == 8
    assert counter.get_and_set(1) == 8 and counter.value == 1
    assert counter.compare_and_set(1, 10) and not counter.compare_and_set(1, 11)
    assert int(counter) == 10
    counter.value = 7
    assert counter.get() == 7 and "SharedCounter" in repr(counter)


def test_value_update_and_dtype() -> None:
    best = SharedValue("float64", float("inf"))
    assert best.update(lambda current: min(current, 2.5)) == 2.5
    assert best.update(lambda current: min(current, 9.0)) == 2.5
    assert best.dtype == np.float64 and isinstance(best.value, float)
    again = pickle.loads(pickle.dumps(best))
    again.set(1.0)
    assert best.value == 1.0 and again.name == best.name


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: SharedCounter(1.5), TypeError, "SharedCounter holds integers, not float"),
        (lambda: SharedCounter(2**63), OverflowError, "does not fit in a signed 64-bit int"),
        (lambda: SharedValue(object), TypeError, "SharedValue cannot hold dtype object"),
    ],
)
def test_value_validates(make: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_counter_overflow_leaves_the_value_alone() -> None:
    counter = SharedCounter(2**63 - 1)
    with pytest.raises(OverflowError, match="does not fit"):
        counter.add(1)
    assert counter.value == 2**63 - 1
    assert not counter.lock.locked()


def test_lock_timeout_and_misuse() -> None:
    value = SharedValue()
    assert value.lock.acquire(timeout=1)
    result: list[bool] = []
    other = threading.Thread(target=lambda: result.append(value.lock.acquire(timeout=0.05)))
    other.start()
    other.join(30)
    assert result == [False]
    value.lock.release()
    with pytest.raises(RuntimeError, match=r"release of the lock of shared segment .* not held"):
        value.lock.release()
    with pytest.raises(ValueError, match="can't specify a timeout for a non-blocking call"):
        value.lock.acquire(blocking=False, timeout=1)


@pytest.mark.parametrize("on_segment", [True, False], ids=["flock-segment", "lock-file"])
def test_counter_is_atomic_across_threads(
    monkeypatch: pytest.MonkeyPatch, on_segment: bool
) -> None:
    monkeypatch.setattr(_values, "_LOCK_ON_SEGMENT", on_segment)
    counter = SharedCounter()
    twin = pickle.loads(pickle.dumps(counter))  # a second descriptor, as another process has
    threads = [
        threading.Thread(target=children.add_to_counter, args=(c, 2000, 1))
        for c in (counter, twin, counter, twin)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert counter.value == 8000


@pytest.mark.parametrize("method", START_METHODS)
def test_counter_is_atomic_across_processes(method: str) -> None:
    context = multiprocessing.get_context(method)
    counter = SharedCounter()
    workers = [
        context.Process(target=children.add_to_counter, args=(counter, 1500, 2)) for _ in range(3)
    ]
    for w in workers:
        w.start()
    children.add_to_counter(counter, 1500, 2)  # and the caller at the same time
    for w in workers:
        _join(w)
    assert counter.value == 4 * 1500 * 2


def test_a_killed_holder_does_not_block_the_others() -> None:
    context = multiprocessing.get_context(START_METHODS[0])
    value = SharedCounter()
    ready = context.Event()
    holder = context.Process(target=children.hold_lock_forever, args=(value, ready))
    holder.start()
    try:
        assert ready.wait(60)
        assert not value.lock.acquire(timeout=0.05)  # really held by the other process
    finally:
        holder.kill()
        holder.join(30)
    assert value.lock.acquire(timeout=30)  # the kernel released the dead holder's flock
    value.lock.release()
    assert value.add(1) == 1


@pytest.mark.parametrize("method", START_METHODS)
def test_workers_keep_a_shared_array_mapped_until_its_owner_drops_it(method: str) -> None:
    with fermion.Executor("processes", workers=1, start_method=method) as ex:
        array = fermion.sharing.shared_copy(np.arange(1000.0))
        other = fermion.sharing.shared_copy(np.ones(10))
        first = ex.submit(children.mapping_address, array).result(60)
        assert ex.submit(children.mapping_address, array).result(60) == first  # not remapped
        # The pool's thread may still hold the last task (its arguments: the array) a
        # moment after its result arrived; once a later task's result has, it has let go.
        assert ex.submit(abs, -1).result(60) == 1
        name = array.segment_name
        del array
        gc.collect()
        assert name is not None and not _segments.segment_exists(name)
        # At its next open the worker lets go of the mapping whose name is gone.
        recent = ex.submit(children.recent_mappings, other).result(60)
        assert other.segment_name in recent and name not in recent
        del other
        gc.collect()
