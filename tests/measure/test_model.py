"""The cost model behind advise and auto, driven with numbers: no clocks, no threads."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from fermion._costs._model import predict_option, predict_speedup
from fermion.measure import Machine, TaskCost, recommend

LAPTOP = Machine(cpus=2, process_startup=0.2)
FREE_THREADED = Machine(cpus=2, gil=False, process_startup=0.2)

PYTHON_40MS = TaskCost(wall=0.040, cpu=0.040, gil_held=0.97, transfer=20e-6, transfer_bytes=200)
SLEEP_10MS = TaskCost(wall=0.010, cpu=0.0002, gil_held=0.01, transfer=20e-6, transfer_bytes=100)
NUMPY_20MS = TaskCost(wall=0.020, cpu=0.020, gil_held=0.03, transfer=20e-6, transfer_bytes=100)
TINY = TaskCost(wall=1e-7, cpu=1e-7, gil_held=1.0, transfer=2e-6, transfer_bytes=30)
TINY_NO_GIL = TaskCost(wall=3e-7, cpu=3e-7, gil_held=0.0, transfer=2e-6, transfer_bytes=30)


def test_python_code_holding_the_gil_goes_to_processes() -> None:
    advice = recommend(PYTHON_40MS, LAPTOP, 200)
    assert (advice.backend, advice.workers) == ("processes", 2)
    assert advice.speedup > 1.5
    assert "holds the GIL 97% of the time: threads cannot help" in advice.reasons
    assert any(
        "each task takes 40 ms" in r and "the cost of sending it" in r for r in advice.reasons
    )
    threads = next(o for o in advice.options if o.backend == "threads")
    assert threads.speedup < 1.05


def test_free_threaded_build_runs_python_code_on_threads() -> None:
    advice = recommend(PYTHON_40MS, FREE_THREADED, 200)
    assert advice.backend == "threads" and advice.workers == 2
    assert any("free-threaded" in r for r in advice.reasons)


def test_waiting_work_gets_more_threads_than_cores() -> None:
    advice = recommend(SLEEP_10MS, LAPTOP, 500)
    assert advice.backend == "threads"
    assert advice.workers > LAPTOP.cpus
    assert any("threads overlap the waiting" in r for r in advice.reasons)
    assert any("waiting threads need no core" in r for r in advice.reasons)


def test_numpy_work_that_releases_the_gil_goes_to_threads() -> None:
    advice = recommend(NUMPY_20MS, LAPTOP, 200)
    assert (advice.backend, advice.workers) == ("threads", 2)
    assert any("without the GIL" in r for r in advice.reasons)


def test_tiny_tasks_stay_serial() -> None:
    advice = recommend(TINY, LAPTOP, 100_000)
    assert advice.backend == "serial" and advice.workers == 1
    assert any(
        "less than the 30 µs it costs to hand one to a worker: serial" in r for r in advice.reasons
    )
    assert any("serial is simpler" in r for r in advice.reasons)


def test_map_chunks_of_tiny_calls_run_on_threads_without_a_gil() -> None:
    # One call is a hundredth of a hand-off, but a map hands over chunks of thousands.
    advice = recommend(TINY_NO_GIL, FREE_THREADED, 3_000_000)
    assert (advice.backend, advice.workers) == ("threads", 2), str(advice)
    assert advice.chunksize * TINY_NO_GIL.wall >= 20 * FREE_THREADED.thread_dispatch
    assert any("free-threaded build" in r for r in advice.reasons)
    amortised = r"chunks of \d+ calls \(600 µs of work each\) amortise that"
    assert any(re.search(amortised, r) for r in advice.reasons), advice.reasons
    # submit() hands over one call at a time; with a GIL the chunks take turns.
    assert recommend(TINY_NO_GIL, FREE_THREADED, 3_000_000, chunksize=1).backend == "serial"
    with_gil = recommend(replace(TINY_NO_GIL, gil_held=1.0), LAPTOP, 3_000_000)
    assert with_gil.backend == "serial", str(with_gil)
    assert "with the GIL, threads would run the chunks of Python calls in turn" in with_gil.reasons


def test_the_caller_takes_a_chunk_of_results_faster_than_results_one_by_one() -> None:
    # 1 µs per future bounds a pool of tiny calls; a chunk's list costs tens of ns per item.
    chunked = predict_option(TINY_NO_GIL, FREE_THREADED, "threads", 2, 3_000_000, chunksize=2000)
    assert chunked is not None and chunked.speedup > 1.5
    unchunked = replace(FREE_THREADED, chunk_item_overhead=FREE_THREADED.item_overhead)
    slow = predict_option(TINY_NO_GIL, unchunked, "threads", 2, 3_000_000, chunksize=2000)
    assert slow is not None and slow.speedup < 0.5


def test_a_short_job_is_not_worth_starting_threads() -> None:
    # 3,000 tiny calls: 0.9 ms in all; two threads would halve it, but cost 0.2 ms to start.
    assert recommend(TINY_NO_GIL, FREE_THREADED, 3_000).backend == "serial"
    free_start = replace(FREE_THREADED, thread_startup=0.0)
    assert recommend(TINY_NO_GIL, free_start, 3_000).backend == "threads"


def test_little_work_is_not_worth_starting_processes() -> None:
    advice = recommend(PYTHON_40MS, LAPTOP, 4)
    assert advice.backend == "serial"
    assert any("starting a process pool" in r for r in advice.reasons)


def test_a_pool_started_behind_the_work_costs_only_the_calls_not_done_by_then() -> None:
    # auto: the calls run here until the workers are ready, so a short job is never
    # slower for a pool (all done first), and a long one loses only the start-up's share
    behind = replace(LAPTOP, startup_overlapped=True)
    short = predict_option(PYTHON_40MS, behind, "processes", 2, 4)
    assert short is not None and short.speedup == 1.0
    assert recommend(PYTHON_40MS, behind, 4).backend == "serial"
    long = predict_option(PYTHON_40MS, behind, "processes", 2, 100)
    waited = predict_option(PYTHON_40MS, LAPTOP, "processes", 2, 100)
    assert long is not None and waited is not None
    assert long.seconds < waited.seconds
    # the second worker starts once the calls stop here (another start-up): 5 calls
    # here, 4 on the first worker alone (each one 10 us longer there: the pickling),
    # then 91 on both
    assert long.seconds == pytest.approx(0.2 + 4 * 0.04001 + 91 * 0.04001 / 2, rel=1e-3)


def test_large_arguments_make_processes_copy_more_than_compute() -> None:
    big = TaskCost(wall=0.005, cpu=0.005, gil_held=0.95, transfer=0.02, transfer_bytes=16_000_000)
    advice = recommend(big, LAPTOP, 200)
    assert advice.backend == "serial"
    assert any("would spend their time copying" in r for r in advice.reasons)
    released = TaskCost(
        wall=0.005, cpu=0.005, gil_held=0.05, transfer=0.02, transfer_bytes=16_000_000
    )
    assert recommend(released, LAPTOP, 200).backend == "threads"


def test_unpicklable_work_has_no_process_option() -> None:
    cost = TaskCost(wall=0.040, cpu=0.040, gil_held=0.97, picklable=False)
    advice = recommend(cost, LAPTOP, 200)
    assert "processes" not in {o.backend for o in advice.options}
    assert advice.backend == "serial"
    assert any("cannot be pickled" in r for r in advice.reasons)


def test_fixed_workers_and_backends_limit_the_choice() -> None:
    advice = recommend(SLEEP_10MS, LAPTOP, 500, workers=3, backends=("serial", "threads"))
    assert {o.backend for o in advice.options} == {"serial", "threads"}
    assert all(o.workers == 3 for o in advice.options if o.backend != "serial")


def test_map_chunks_small_tasks_and_submit_does_not() -> None:
    small = TaskCost(wall=200e-6, cpu=200e-6, gil_held=0.9, transfer=5e-6, transfer_bytes=50)
    chunked = recommend(small, LAPTOP, 100_000)
    assert next(o for o in chunked.options if o.backend == "processes").chunksize > 1
    one_by_one = recommend(small, LAPTOP, 100_000, chunksize=1)
    assert all(o.chunksize == 1 for o in one_by_one.options if o.backend != "serial")
    assert predict_speedup(small, LAPTOP, "processes", 2, 100_000) > predict_speedup(
        small, LAPTOP, "processes", 2, 100_000, chunksize=1
    )


def test_the_advice_reads_as_a_report() -> None:
    text = str(recommend(PYTHON_40MS, LAPTOP, 200))
    assert text.startswith("Recommended: backend='processes', workers=2")
    assert "Why:" in text and "Options:" in text and "predicted" in text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: TaskCost(wall=-1, cpu=0, gil_held=0),
            r"TaskCost.wall must be a finite number >= 0, not -1",
        ),
        (
            lambda: TaskCost(wall=1, cpu=0, gil_held=1.5),
            r"TaskCost.gil_held is a fraction in \[0, 1\], not 1.5",
        ),
        (lambda: Machine(cpus=0), r"Machine.cpus must be a positive integer, not 0"),
        (lambda: recommend(TINY, LAPTOP, 0), r"advice needs at least one item, got items=0"),
        (
            lambda: recommend(TINY, LAPTOP, 5, workers=0),
            r"workers must be a positive integer or None, not 0",
        ),
        (
            lambda: recommend(TINY, LAPTOP, 5, chunksize=0),
            r"chunksize must be a positive integer or None, not 0",
        ),
        (
            lambda: recommend(TINY, LAPTOP, 5, backends=("gpu",)),
            r"backends must be chosen from serial, threads, processes",
        ),
        (
            lambda: predict_speedup(TINY, LAPTOP, "gpu", 1, 1),
            r"unknown backend 'gpu'; the model knows",
        ),
    ],
)
def test_nonsense_inputs_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]
