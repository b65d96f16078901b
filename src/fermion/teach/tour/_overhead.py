"""Section: the relatively high overhead of processes. Starting a thread against
starting a process (each start method this system has), handing one tiny task to a
thread pool against a process pool, and pickling a task's argument, which a process
needs and a thread does not. Medians, measured here and now.
"""

from __future__ import annotations

import multiprocessing

from fermion.teach.tour._programs import load_program
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["PROGRAM", "run"]

KEY = "overhead"
TITLE = "The overhead of processes: start-up, hand-off and pickling"
EXERCISE = "How many microseconds of work must a task do before a process pool beats a thread pool here? Time fermion.map(abs, range(10_000)) on both to check your guess."

PROGRAM = '''"""What a process costs that a thread does not: starting it, handing it a task,
and pickling the task's data."""

import multiprocessing
import pickle
import statistics
import threading
import time

import fermion


def median_seconds(action, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def start_thread():
    thread = threading.Thread(target=time.sleep, args=(0,))
    thread.start()
    thread.join()


def start_process(method):
    process = multiprocessing.get_context(method).Process(target=time.sleep, args=(0,))
    process.start()
    process.join()


def round_trip(backend, repeats):
    """Median seconds for submit(abs, -1).result() on a started pool of one worker."""
    with fermion.Executor(backend, 1) as executor:
        executor.submit(abs, -1).result()  # start the worker first
        return median_seconds(lambda: executor.submit(abs, -1).result(), repeats)


def pickling(data, repeats):
    """Pickled size and median seconds to pickle and unpickle ``data``."""
    size = len(pickle.dumps(data, protocol=5))
    seconds = median_seconds(lambda: pickle.loads(pickle.dumps(data, protocol=5)), repeats)
    return size, seconds


if __name__ == "__main__":
    print(f"start a thread: {median_seconds(start_thread, 50) * 1e6:.0f} µs")
    for method in multiprocessing.get_all_start_methods():
        if method != "fork":  # fork in a process with threads is unsafe (and deprecated)
            seconds = median_seconds(lambda: start_process(method), 3)
            print(f"start a process ({method}): {seconds * 1e3:.1f} ms")
    for backend in ("threads", "processes"):
        print(f"one task on {backend}: {round_trip(backend, 50) * 1e6:.0f} µs")
    size, seconds = pickling(list(range(100_000)), 5)
    print(f"pickling 100000 ints: {size / 1e3:.0f} kB in {seconds * 1e3:.1f} ms")
'''


def _methods() -> list[str]:
    # fork is left out: forking a process that runs threads (the tour does) is unsafe
    # and deprecated since 3.12; the pools use forkserver or spawn.
    return [m for m in multiprocessing.get_all_start_methods() if m != "fork"]


def run(ctx: TourContext, section: SectionResult) -> None:
    """Time starting a thread and a process, one task on each pool, and pickling."""
    program = load_program(ctx.out / "programs", "process_overhead", PROGRAM)
    median_seconds = program["median_seconds"]
    thread_repeats, process_repeats, trip_repeats = (20, 2, 20) if ctx.quick else (50, 3, 50)
    items = 100_000
    section.code(PROGRAM, program["__file__"])
    ctx.progress("starting threads")
    thread = median_seconds(program["start_thread"], thread_repeats)
    starts: dict[str, float] = {}
    for method in _methods():
        ctx.progress(f"starting processes ({method})")
        starts[method] = median_seconds(
            lambda method=method: program["start_process"](method), process_repeats
        )
    trips: dict[str, float] = {}
    for backend in ("threads", "processes"):
        ctx.progress(f"one task at a time on {backend}")
        trips[backend] = program["round_trip"](backend, trip_repeats)
    ctx.progress(f"pickling {items} ints")
    size, pickle_seconds = program["pickling"](list(range(items)), 5)
    section.data.update(
        {
            "thread_start": thread,
            "process_start": starts,
            "round_trip": trips,
            "pickled_bytes": size,
            "pickle_seconds": pickle_seconds,
            "items": items,
        }
    )
    rows = [f"{'what':<44} {'median':>12}"]
    rows.append(f"{'start and join a thread':<44} {thread * 1e6:>9.0f} µs")
    for method, seconds in starts.items():
        rows.append(f"{f'start and join a process ({method})':<44} {seconds * 1e3:>9.1f} ms")
    for backend, seconds in trips.items():
        rows.append(f"{f'one tiny task on a {backend} pool':<44} {seconds * 1e6:>9.0f} µs")
    rows.append(
        f"{f'pickle + unpickle {items} ints ({size / 1e3:.0f} kB)':<44} "
        f"{pickle_seconds * 1e3:>9.2f} ms"
    )
    section.show("\n".join(rows))
    cheapest = min(starts.values()) if starts else None
    ratio_text = f"a process costs {cheapest / thread:.0f}x a thread to start" if cheapest else ""
    trip_ratio = trips["processes"] / trips["threads"] if trips.get("threads") else 0.0
    section.say(
        f"Measured: {ratio_text}, and handing one task to a worker process takes "
        f"{trip_ratio:.1f}x what it takes to hand it to a thread "
        f"({trips['processes'] * 1e6:.0f} µs against {trips['threads'] * 1e6:.0f} µs), "
        f"because the task and its result are pickled and sent through a pipe: "
        f"{items} ints are {size / 1e3:.0f} kB and {pickle_seconds * 1e3:.2f} ms of "
        "pickling each way, where a thread passes a reference. Processes pay off when each "
        "task computes far longer than that; section 1 starts its pools before the clock "
        "for this reason, and fermion.advise weighs these costs."
    )
