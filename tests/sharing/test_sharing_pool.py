"""The shared-memory transport inside fermion's process pool: no code change for users."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _sharing_children as children
import numpy as np
import pytest

import fermion
from fermion.sharing import _connection, _segments

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /dev/shm")

START_METHODS = [m for m in ("forkserver", "spawn") if m in multiprocessing.get_all_start_methods()]
HERE = Path(__file__).parent
MIB = 1 << 20


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(params=START_METHODS)
def executor(request: pytest.FixtureRequest) -> fermion.Executor:
    with fermion.Executor("processes", workers=2, start_method=request.param) as ex:
        yield ex


def test_big_arguments_and_results_use_shared_memory(executor: fermion.Executor) -> None:
    arrays = [np.full(2 * MIB // 8, float(i)) for i in range(4)]  # 2 MiB each
    before = _connection.statistics()
    totals = list(executor.map(children.total, arrays, chunksize=1))
    after = _connection.statistics()
    assert totals == [float(a.sum()) for a in arrays]
    assert after["shared_bytes"] - before["shared_bytes"] == 4 * 2 * MIB
    assert after["inband_bytes"] == before["inband_bytes"]  # nothing big went through the pipe

    result = executor.submit(children.big_result, 3 * MIB).result(timeout=60)
    assert result.shape == (3 * MIB // 8,) and result.flags.writeable
    assert float(result.sum()) == 3.0 * (3 * MIB // 8)
    base = result
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    assert isinstance(base, memoryview)  # on the mapped segment, not a private copy


def test_small_arrays_stay_in_the_pipe(executor: fermion.Executor) -> None:
    before = _connection.statistics()
    assert executor.submit(children.total, np.ones(1000)).result(timeout=60) == 1000.0
    after = _connection.statistics()
    assert after["shared_bytes"] == before["shared_bytes"]
    assert after["inband_bytes"] - before["inband_bytes"] == 8000


def test_pool_workers_fill_a_shared_array(executor: fermion.Executor) -> None:
    out = fermion.shared_array((6, 1000))
    list(executor.map(children.fill_rows, [out] * 3, [[0, 1], [2, 3], [4, 5]], chunksize=1))
    assert np.array_equal(out[:, -1], np.arange(6.0))
    name = out.segment_name
    del out
    gc.collect()  # Executor.map keeps its calls in a reference cycle (reported)
    assert name is not None and not _segments.segment_exists(name)  # freed once dropped


def test_pool_workers_count_on_a_shared_counter(executor: fermion.Executor) -> None:
    counter = fermion.SharedCounter()
    seen = list(executor.map(children.add_one, [counter] * 200, chunksize=7))
    assert counter.value == 200
    assert sorted(seen) == list(range(1, 201))  # every add returned a distinct count
    del counter
    gc.collect()


def test_a_worker_killed_mid_result_leaves_no_segment(
    executor: fermion.Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_connection, "DEAD_WORKER_SWEEP_INTERVAL", 0.0)
    head = f"fermion-{os.getpid()}-w"
    future = executor.submit(children.die_holding_a_half_made_result, MIB)
    with pytest.raises(fermion.WorkerCrashedError, match="SIGKILL"):
        future.result(timeout=60)
    # Swept as soon as the caller sends its next message (or the pool calls
    # _codec.release_worker_segments when it reaps the worker).
    assert executor.submit(children.total, np.ones(MIB)).result(timeout=60) == MIB  # pool goes on
    _wait_until(lambda: not _segments.names_starting_with(head), "the dead worker's segment")


@pytest.mark.parametrize("mode", ["pool", "plain-pool"])
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigterm-group", "sigkill"])
def test_the_caller_interrupted_or_killed_leaves_no_segment(how: str, mode: str) -> None:
    """Ctrl-C runs the exit hooks; SIGTERM runs the release first; SIGKILL skips both:
    the pool's workers sweep. ``plain-pool`` holds only argument copies, which the
    pool's own thread made (it cannot install the SIGTERM release itself)."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    )
    process = subprocess.Popen(
        [sys.executable, str(HERE / "_sharing_script.py"), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert line[:1] == ["ready"], process.communicate(timeout=30)
        pid = int(line[1])
        assert _segments.names_starting_with(f"fermion-{pid}-")  # it holds segments now
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole process group
        elif how == "sigterm":
            process.terminate()  # the caller alone: its workers sweep too
        elif how == "sigterm-group":
            os.killpg(process.pid, signal.SIGTERM)  # `kill -TERM -<pgid>`: workers too
        else:
            process.kill()  # the caller alone: its workers outlive it for a moment
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
    if how == "ctrl-c":
        assert "KeyboardInterrupt" in stderr
    elif how.startswith("sigterm"):
        assert process.returncode == -signal.SIGTERM, stderr  # it still dies of SIGTERM
    assert "Warning" not in stderr
    _wait_until(lambda: not _segments.names_starting_with(f"fermion-{pid}-"), "no segments")


@pytest.mark.parametrize("method", START_METHODS)
def test_warm_segments_are_refilled_but_never_under_a_kept_argument(method: str) -> None:
    n = 2 * MIB // 8
    with fermion.Executor("processes", workers=1, start_method=method) as ex:
        before = _connection.statistics()
        # One worker, one task at a time: each argument may reuse the previous segment.
        totals = [ex.submit(children.total, np.full(n, float(i))).result(60) for i in range(6)]
        assert totals == [float(i) * n for i in range(6)]  # refilled, never stale
        middle = _connection.statistics()
        assert middle["segments_recycled"] - before["segments_recycled"] >= 4
        # A segment goes back to the free list once the worker has let go of it, which
        # may come just after the result (seen on 3.13t under load).
        _wait_until(
            lambda: _connection.statistics()["free_segment_bytes"] >= 2 * MIB,
            "a warm segment to be free again",
        )

        # The worker keeps this argument: its segment must not be refilled under it.
        assert ex.submit(children.keep_and_total, np.full(n, 7.0)).result(60) == 7.0 * n
        for i in range(4):
            assert ex.submit(children.total, np.full(n, float(i))).result(60) == float(i) * n
        assert ex.submit(children.kept_totals).result(60) == [7.0 * n]
        assert ex.submit(children.forget_kept).result(60) == 1
        # Once released, the segment is reused again rather than a new one made.
        after_forget = _connection.statistics()
        for _ in range(3):
            assert ex.submit(children.total, np.full(n, 1.0)).result(60) == float(n)
        final = _connection.statistics()
        assert final["segments_created"] == after_forget["segments_created"]
    gc.collect()
    _wait_until(
        lambda: _connection.statistics()["segment_bytes"] == 0, "the warm segments to be released"
    )


def test_the_same_array_goes_into_shared_memory_once_per_map(executor: fermion.Executor) -> None:
    plain = np.arange(MIB, dtype=np.float64)  # 8 MiB, writable
    before = _connection.statistics()
    totals = list(executor.map(children.total, [plain] * 8, chunksize=1))
    assert totals == [float(plain.sum())] * 8
    made = _connection.statistics()["copies_made"] - before["copies_made"]
    # One copy serves the tasks in flight; the pool may catch a moment where none
    # is (both workers done, the next task not yet sent): a second copy, not eight.
    assert 1 <= made <= 2


def test_a_read_only_array_is_copied_once_across_maps(executor: fermion.Executor) -> None:
    table = np.arange(MIB, dtype=np.float64)
    table.flags.writeable = False
    before = _connection.statistics()
    for _ in range(3):
        assert (
            list(executor.map(children.total, [table] * 4, chunksize=1)) == [float(table.sum())] * 4
        )
    assert _connection.statistics()["copies_made"] - before["copies_made"] == 1


def test_a_task_sees_the_array_as_it_was_when_it_was_sent(executor: fermion.Executor) -> None:
    array = np.zeros(MIB)
    for value in (1.0, 2.0, 3.0):
        array[:] = value  # changed after the previous task finished
        assert executor.submit(children.total, array).result(timeout=60) == value * MIB


def test_big_arguments_arrive_read_only(executor: fermion.Executor) -> None:
    assert executor.submit(children.is_writable, np.zeros(MIB)).result(timeout=60) is False
    assert executor.submit(children.is_writable, np.zeros(16)).result(timeout=60) is True


def test_maps_from_several_threads_share_copies_correctly(executor: fermion.Executor) -> None:
    import threading

    arrays = [np.full(MIB // 4, float(i)) for i in range(3)]
    arrays[0].flags.writeable = False
    errors: list[BaseException] = []
    start = threading.Barrier(4, timeout=60)

    def run(index: int) -> None:
        try:
            start.wait()
            for _ in range(3):
                items = [arrays[(index + k) % 3] for k in range(6)]
                totals = list(executor.map(children.total, items, chunksize=1, timeout=120))
                assert totals == [float(a.sum()) for a in items]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
