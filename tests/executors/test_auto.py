"""backend="auto": measures the first tasks, commits to a backend, says why, and stays
correct for every way of calling the Executor while it measures and after."""

from __future__ import annotations

import concurrent.futures
import gc
import sys
import threading
import weakref
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "measure"))
import measure_helpers as h
from auto_helpers import choice_of, decide_as_if

from fermion import Executor, TaskKilledError, TaskTimeoutError
from fermion._costs._gil import GilProbe
from fermion._costs._platform import cpu_count, gil_enabled
from fermion.executors import _auto
from fermion.executors._auto import AutoBackend

# Start-up and job length pinned so that the choice depends on the task, not on how
# busy the test machine happens to be.
STEADY = {"process_startup": 0.05, "expected_seconds": 5.0}


class _AlwaysHeldProbe(GilProbe):
    """A probe whose every wake-up found the GIL busy."""

    @property
    def late(self) -> int:
        return self.samples


def _half_microsecond(x: int) -> int:
    return x + sum(range(12))


def test_a_map_of_tiny_calls_runs_serial_with_a_gil() -> None:
    with Executor("auto", **STEADY) as executor:
        decide_as_if(executor, gil=True)
        assert list(executor.map(h.square, range(3000))) == [x * x for x in range(3000)]
        choice = choice_of(executor)
    assert choice.backend == "serial", str(choice)
    assert "less than" in choice.reason
    assert str(choice).startswith("auto chose serial with 1 worker: measured")


@pytest.mark.skipif(cpu_count() < 2, reason="threads gain nothing on one core")
def test_a_map_of_tiny_calls_runs_its_chunks_on_threads_without_a_gil() -> None:
    # Each call is far too small to hand over, but a map hands over chunks of
    # thousands of calls, and without a GIL the chunks run in parallel.
    with Executor("auto", **STEADY) as executor:
        backend = decide_as_if(executor, gil=False)
        # 200,000 calls of about 0.5 µs: 0.1 s of work in all, worth two threads
        # without a GIL (calls of 0.05 µs would cost as much to collect as to run).
        n = 200_000
        assert list(executor.map(_half_microsecond, range(n))) == [
            _half_microsecond(x) for x in range(n)
        ]
        choice = choice_of(executor)
    assert choice.backend == "threads", str(choice)
    assert choice.workers == backend._policy.measuring_threads
    assert backend.chosen is backend._measuring  # the measuring threads went on
    assert "free-threaded build" in choice.reason and "chunks of" in choice.reason
    assert "less than the 30 µs it costs to hand one to a worker" in choice.reason


@pytest.mark.parametrize(
    "options", [{"chunksize": 1}, {"task_timeout": 30.0}], ids=["chunksize=1", "task_timeout"]
)
def test_a_map_of_tiny_calls_one_per_chunk_runs_serial_without_a_gil(
    options: dict[str, float],
) -> None:
    # A chunk of one call amortises nothing: as submit(), whatever the GIL does.
    with Executor("auto", **STEADY) as executor:
        decide_as_if(executor, gil=False)
        results = executor.map(h.square, range(3000), **options)  # type: ignore[arg-type]
        assert list(results) == [x * x for x in range(3000)]
        choice = choice_of(executor)
    assert choice.backend == "serial", str(choice)


def test_a_map_of_tiny_calls_on_this_build() -> None:
    with Executor("auto", **STEADY) as executor:
        assert list(executor.map(h.square, range(3000))) == [x * x for x in range(3000)]
        choice = choice_of(executor)
    expected = "serial" if gil_enabled() or cpu_count() < 2 else "threads"
    assert choice.backend == expected, str(choice)


@pytest.mark.parametrize("gil", [True, False], ids=["gil", "no-gil"])
def test_tiny_submits_run_serial_with_or_without_a_gil(gil: bool) -> None:
    # submit() hands over one call at a time: no chunk amortises the hand-off.
    with Executor("auto", **STEADY) as executor:
        decide_as_if(executor, gil=gil)
        futures = [executor.submit(h.square, x) for x in range(2000)]
        assert [f.result(timeout=30) for f in futures] == [x * x for x in range(2000)]
        choice = choice_of(executor)
    assert choice.backend == "serial", str(choice)


def test_waiting_tasks_run_on_threads() -> None:
    with Executor("auto", **STEADY) as executor:
        assert list(executor.map(h.nap_item, range(40))) == list(range(40))
        choice = choice_of(executor)
    assert choice.backend == "threads", str(choice)
    assert choice.workers > 1
    assert "waits" in choice.reason
    assert executor.backend.chosen is not None  # type: ignore[attr-defined]


@pytest.mark.skipif(cpu_count() < 2, reason="needs two cores to measure on two threads")
def test_calls_that_leave_the_gil_free_get_a_second_thread_while_measured() -> None:
    # The first call waits (GIL free): the probe finds the GIL free, and the second
    # call starts beside it. A barrier of two passes only if both run at once.
    barrier = threading.Barrier(2, timeout=20)
    with Executor("auto", workers=2, **STEADY) as executor:
        futures = [executor.submit(barrier.wait) for _ in range(2)]
        done, _ = concurrent.futures.wait(futures, timeout=30)
        assert [f.exception() for f in done] == [None, None], str(choice_of(executor))


@pytest.mark.slow
def test_python_cpu_tasks_run_on_processes_or_free_threads() -> None:
    expected = "processes" if gil_enabled() else "threads"
    # Submitted calls: the work to come is not known, so auto assumes STEADY's 5 s (a
    # map of 30 such items would be known to take 0.1 s: serial).
    with Executor("auto", **STEADY) as executor:
        futures = [executor.submit(h.cpu_item, x) for x in range(30)]
        assert [f.result(timeout=60) for f in futures] == [h.cpu_item(x) for x in range(30)]
        choice = choice_of(executor)
    assert choice.backend == expected, str(choice)
    assert choice.calls >= 1 and choice.cost.wall > 0
    assert {o.backend for o in choice.options} >= {"serial", "threads"}


def test_a_long_first_call_is_decided_before_it_returns() -> None:
    release = threading.Event()
    with Executor("auto", max_measure_seconds=0.05, **STEADY) as executor:
        first = executor.submit(h.spin_until, release)
        choice = choice_of(executor)  # while the first call still runs
        assert not first.done()
        assert choice.calls == 0 and "still running" in choice.reason
        release.set()
        assert first.result(timeout=30) == "done"


class _Dropped:
    """A result the caller drops (weakly referenceable)."""


def _make_dropped(x: int) -> _Dropped:
    return _Dropped()


def test_a_result_the_caller_drops_is_freed_while_measuring() -> None:
    # As concurrent.futures' test_free_reference: the first result is costed for the
    # model, and no reference kept for that may outlive the caller's.
    for _ in range(5):
        with Executor("auto", **STEADY) as executor:
            for obj in executor.map(_make_dropped, range(10)):
                ref = weakref.ref(obj)
                del obj
                gc.collect()
                assert ref() is None


def test_results_exceptions_and_order_are_kept_across_the_switch() -> None:
    with Executor("auto", workers=2, **STEADY) as executor:
        futures = [executor.submit(h.fail_on_three, x) for x in range(10)]
        results = list(executor.map(h.nap_item, range(20)))
        unordered = sorted(executor.imap(h.nap_item, range(20), ordered=False))
        done = [f for f in concurrent.futures.as_completed(futures, timeout=30)]
    assert results == list(range(20)) and unordered == list(range(20))
    assert len(done) == 10
    with pytest.raises(KeyError, match="item 3 is bad"):
        futures[3].result()
    assert [f.result() for i, f in enumerate(futures) if i != 3] == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_task_timeout_applies_while_measuring() -> None:
    release = threading.Event()
    with Executor("auto", task_timeout=0.2, **STEADY) as executor:
        future = executor.submit(h.spin_until, release)
        with pytest.raises(TaskTimeoutError):
            future.result(timeout=30)
        release.set()


def test_kill_reaches_the_task_being_measured() -> None:
    release = threading.Event()
    started = threading.Event()
    with Executor("auto", max_measure_seconds=30, **STEADY) as executor:
        future = executor.submit(lambda: (started.set(), h.spin_until(release))[1])
        assert started.wait(30)
        assert executor.kill(future)
        with pytest.raises(TaskKilledError):
            future.result(timeout=30)
        release.set()


def test_shutdown_cancel_futures_cancels_the_queued_tasks() -> None:
    release = threading.Event()
    # One worker: one measuring thread, so the tasks after the first stay queued.
    executor = Executor("auto", workers=1, max_measure_seconds=30, **STEADY)
    running = executor.submit(h.spin_until, release)
    queued = [executor.submit(h.square, x) for x in range(5)]
    release_later = threading.Timer(0.2, release.set)
    release_later.start()
    executor.shutdown(wait=True, cancel_futures=True)
    release_later.join()
    assert running.result(timeout=30) == "done"
    assert all(f.cancelled() for f in queued)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(h.square, 1)


def test_shutdown_without_wait_still_runs_everything() -> None:
    executor = Executor("auto", **STEADY)
    futures = [executor.submit(h.nap_item, x) for x in range(10)]
    executor.shutdown(wait=False)
    assert [f.result(timeout=30) for f in futures] == list(range(10))


def test_choice_is_none_while_nothing_ran() -> None:
    with Executor("auto") as executor:
        assert executor.backend.choice is None  # type: ignore[attr-defined]
        assert executor.workers >= 1


def test_auto_refuses_nonsense_options() -> None:
    with pytest.raises(ValueError, match=r"workers must be a positive integer or None .*, got 0"):
        AutoBackend(workers=0)
    with pytest.raises(
        ValueError, match=r"auto backend: measure_seconds must be a number of seconds >= 0"
    ):
        AutoBackend(measure_seconds=-1)
    with pytest.raises(TypeError, match=r"unknown option 'colour' for backend 'threads'"):
        AutoBackend(threads_options={"colour": "red"})


@pytest.mark.skipif(not gil_enabled(), reason="processes are chosen for CPU work only with a GIL")
def test_a_backend_that_cannot_start_falls_back_to_serial_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This test is about the fallback, not the GIL measurement (tested on its own): pin
    # the probe's verdict to "the GIL is held", as it is for this pure-Python item, so a
    # loaded machine cannot steer auto towards threads.
    monkeypatch.setattr(_auto, "GilProbe", _AlwaysHeldProbe)
    with Executor(
        "auto", processes_options={"start_method": "no-such-method"}, **STEADY
    ) as executor:
        futures = [executor.submit(h.cpu_item, x) for x in range(40)]
        assert [f.result(timeout=60) for f in futures] == [h.cpu_item(x) for x in range(40)]
        choice = choice_of(executor)
    assert choice.backend == "serial", str(choice)
    assert "the process pool could not start" in choice.reason
