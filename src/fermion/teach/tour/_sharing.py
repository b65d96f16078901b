"""Section 5: sharing. What it costs to send a large NumPy array to worker processes.

First the price of one array in this process: pickling and unpickling its bytes, vs
pickling a ``fermion.SharedArray``, which sends the name of its shared-memory segment.
Then summing the same arrays in worker processes three ways: the standard library's
``ProcessPoolExecutor`` (every array pickled through a pipe), fermion's process pool
with plain arrays (each copied once into shared memory), and fermion's pool with
arrays already in shared memory (no copy at all). Threads, which share memory by
nature, are the reference.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import fermion
from fermion.sharing import shared_copy
from fermion.teach import _workloads
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["run"]

KEY = "sharing"
TITLE = "Sharing: pickling a large array vs shared memory"
EXERCISE = "Send one 64 MB array to a process pool as a plain array and as fermion.shared_array: time both with fermion.Executor('processes')."


def _best_of(repeats: int, action: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def _pickle_cost(array: np.ndarray) -> tuple[int, float]:
    """Pickled size of ``array`` (protocol 5) and the best seconds to dump and load it."""
    size = len(pickle.dumps(array, protocol=5))
    return size, _best_of(3, lambda: pickle.loads(pickle.dumps(array, protocol=5)))


def _stdlib_pool_context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _timed(label: str, run: Callable[[], list[float]], expected: list[float]) -> tuple[str, float]:
    started = time.perf_counter()
    sums = run()
    seconds = time.perf_counter() - started
    if not np.allclose(sums, expected):
        raise RuntimeError(
            f"{label} returned wrong sums: {sums[:3]}... instead of {expected[:3]}..."
        )
    return label, seconds


def run(ctx: TourContext, section: SectionResult) -> None:
    """Time pickling vs shared memory, in-process and through two process pools."""
    megabytes, count = (16, 4) if ctx.quick else (64, 8)
    workers = 2
    rng = np.random.default_rng(8)
    arrays = [rng.random(megabytes * 2**20 // 8) for _ in range(count)]
    expected = [float(np.sum(a)) for a in arrays]
    size = arrays[0].nbytes

    ctx.progress(f"pickling one {megabytes} MB array")
    pickled_bytes, pickle_seconds = _pickle_cost(arrays[0])
    shared_bytes, shared_seconds = _pickle_cost(shared_copy(arrays[0]))
    section.say(f"One {megabytes} MB float64 array, pickled and unpickled in this process:")
    section.show(
        f"{'what is pickled':<32} {'pickled size':>14} {'dumps + loads':>14}\n"
        f"{'numpy.ndarray (its bytes)':<32} {pickled_bytes / 1e6:>11.1f} MB {pickle_seconds * 1e3:>11.1f} ms\n"
        f"{'fermion SharedArray (its name)':<32} {shared_bytes:>12} B  {shared_seconds * 1e3:>11.3f} ms"
    )
    section.data["pickle"] = {
        "bytes": pickled_bytes,
        "seconds": pickle_seconds,
        "shared_bytes": shared_bytes,
        "shared_seconds": shared_seconds,
    }

    section.say(
        f"Summing {count} such arrays ({count * size / 1e6:.0f} MB) with {workers} workers; "
        "each pool is started before the clock starts:"
    )
    rows: list[tuple[str, float]] = []
    ctx.progress("concurrent.futures.ProcessPoolExecutor (pickled through a pipe)")
    try:
        with concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=_stdlib_pool_context()
        ) as pool:
            list(pool.map(_workloads.pause, [0.05] * workers))
            rows.append(
                _timed(
                    "stdlib ProcessPoolExecutor: pickled through a pipe",
                    lambda: list(pool.map(_workloads.array_sum, arrays)),
                    expected,
                )
            )
    except Exception as error:
        section.fail("the standard library's process pool", error)
    ctx.progress("fermion processes, plain arrays")
    shared: list[Any] = []
    try:
        with fermion.Executor("processes", workers) as executor:
            list(executor.map(_workloads.pause, [0.05] * workers, chunksize=1))
            rows.append(
                _timed(
                    "fermion processes: plain arrays (one copy each)",
                    lambda: list(executor.map(_workloads.array_sum, arrays, chunksize=1)),
                    expected,
                )
            )
            ctx.progress("fermion processes, arrays in shared memory")
            shared = [shared_copy(a) for a in arrays]
            rows.append(
                _timed(
                    "fermion processes: SharedArray (no copy)",
                    lambda: list(executor.map(_workloads.array_sum, shared, chunksize=1)),
                    expected,
                )
            )
    except Exception as error:
        section.fail("fermion's process pool", error)
    finally:
        shared.clear()  # frees the shared-memory segments now
    ctx.progress("fermion threads")
    try:
        with fermion.Executor("threads", workers) as executor:
            rows.append(
                _timed(
                    "fermion threads: same memory",
                    lambda: list(executor.map(_workloads.array_sum, arrays, chunksize=1)),
                    expected,
                )
            )
    except Exception as error:
        section.fail("the thread pool", error)
    if rows:
        section.show(
            "\n".join(
                [f"{'how the arrays reach the workers':<52} {'seconds':>8}"]
                + [f"{label:<52} {seconds:>8.3f}" for label, seconds in rows]
            )
        )
        section.data["runs"] = [{"how": label, "seconds": seconds} for label, seconds in rows]
        fastest = min(rows, key=lambda row: row[1])
        slowest = max(rows, key=lambda row: row[1])
        section.say(
            f"Fastest: {fastest[0]} ({fastest[1]:.3f} s); slowest: {slowest[0]} "
            f"({slowest[1]:.3f} s, {slowest[1] / max(fastest[1], 1e-9):.1f}x). Summing is cheap, "
            "so moving the data is most of the cost: share it instead of copying it."
        )
        ctx.save_plot(
            section,
            "sharing.png",
            f"Seconds to sum {count} arrays of {megabytes} MB with {workers} workers, by how the arrays travel.",
            _draw(rows),
        )


def _draw(rows: list[tuple[str, float]]) -> Callable[[Any], None]:
    def draw(figure: Any) -> None:
        axes = figure.subplots()
        labels = [label for label, _ in rows]
        seconds = [value for _, value in rows]
        colours = ["tab:red", "tab:orange", "tab:green", "tab:blue"][: len(rows)]
        axes.barh(range(len(rows)), seconds, color=colours)
        axes.set_yticks(range(len(rows)))
        axes.set_yticklabels(labels)
        axes.invert_yaxis()
        for position, value in enumerate(seconds):
            axes.annotate(f" {value:.3f} s", (value, position), va="center", fontsize=9)
        axes.set_xlabel("seconds (lower is better)")
        axes.set_xlim(0, max(seconds) * 1.25)
        axes.set_title("Sending large arrays to workers")
        axes.grid(True, axis="x", alpha=0.3)

    return draw
