"""Section: mutex vs semaphore. A mutex has an owner: only the thread that took it may
release it (``threading.RLock`` refuses anyone else; plain ``threading.Lock`` does not
check, and fermion's checked lock lets it happen as ``threading.Lock`` does but reports
it, naming both threads). A semaphore has no owner: it is a counter, so it
works as a generalised mutex (``Semaphore(n)`` lets n threads in at once) and as a
signal from one thread to another. Each claim is run and measured.
"""

from __future__ import annotations

import threading
from typing import Any

from fermion.sync import CheckedLock
from fermion.teach.tour._programs import load_program
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["PROGRAM", "run"]

KEY = "mutex"
TITLE = "Mutex vs semaphore: an owner, a counter, a signal"
EXERCISE = "Use a Semaphore(2) to let at most two threads call a slow function at once, and show with most_inside that a third waits. Then release a fermion.sync.CheckedLock from the wrong thread and read the warning."

PROGRAM = '''"""A mutex has an owner; a semaphore is a counter (a generalised mutex, and a signal)."""

import statistics
import threading
import time
import warnings


def release_from_another_thread(lock):
    """Take ``lock`` here, then try to release it from another thread."""
    lock.acquire()
    outcome = []

    def stranger():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                lock.release()
            except RuntimeError as error:
                outcome.append(f"RuntimeError: {error}")
                return
        if caught:
            outcome.append(f"released it, and warned: {caught[0].message}")
        else:
            outcome.append("released it")

    thread = threading.Thread(target=stranger, name="not-the-owner")
    thread.start()
    thread.join()
    if outcome[0].startswith("RuntimeError"):
        lock.release()  # the owner releases it
    return outcome[0]


def most_inside(semaphore, threads=6, hold=0.02):
    """``threads`` threads each hold ``semaphore`` for ``hold`` s: (most inside at once, seconds)."""
    inside = most = 0
    count_lock = threading.Lock()

    def worker():
        nonlocal inside, most
        with semaphore:
            with count_lock:
                inside += 1
                most = max(most, inside)
            time.sleep(hold)
            with count_lock:
                inside -= 1

    started = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return most, time.perf_counter() - started


def signal_latency(rounds=200):
    """A semaphore as a signal: one thread releases, a waiting one wakes. Median seconds."""
    ping, pong = threading.Semaphore(0), threading.Semaphore(0)
    delays = []
    sent = [0.0]

    def waiter():
        for _ in range(rounds):
            ping.acquire()  # wait for the signal
            delays.append(time.perf_counter() - sent[0])
            pong.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    for _ in range(rounds):
        sent[0] = time.perf_counter()
        ping.release()  # signal: any thread may release a semaphore
        pong.acquire()
    thread.join()
    return statistics.median(delays)


if __name__ == "__main__":
    from fermion.sync import CheckedLock

    for lock in (threading.Lock(), threading.RLock(), CheckedLock(), threading.Semaphore(1)):
        print(type(lock).__name__, "->", release_from_another_thread(lock))
    for n in (1, 2, 3):
        print(f"Semaphore({n}): at most {most_inside(threading.Semaphore(n))[0]} inside")
    print(f"signal latency: {signal_latency() * 1e6:.0f} µs")
'''


def run(ctx: TourContext, section: SectionResult) -> None:
    """Release by a non-owner, semaphores of 1-3 permits, and a semaphore as a signal."""
    program = load_program(ctx.out / "programs", "mutex_semaphore", PROGRAM)
    section.code(PROGRAM, program["__file__"])
    ctx.progress("releasing a lock from a thread that does not own it")
    candidates: list[tuple[str, Any]] = [
        ("threading.Lock()", threading.Lock()),
        ("threading.RLock()", threading.RLock()),
        ("fermion.sync.CheckedLock()", CheckedLock()),
        ("threading.Semaphore(1)", threading.Semaphore(1)),
    ]
    outcomes: dict[str, str] = {}
    for label, lock in candidates:
        outcomes[label] = program["release_from_another_thread"](lock)
    section.say("1. Who may release? Each lock is taken by this thread, then released by another:")
    section.show("\n".join(f"{label:<28} {text}" for label, text in outcomes.items()))
    refused = [label for label, text in outcomes.items() if text.startswith("RuntimeError")]
    warned = [label for label, text in outcomes.items() if "warned" in text]
    allowed = [label for label, text in outcomes.items() if text == "released it"]
    section.say(
        f"Refused: {', '.join(refused) or 'none'}: a mutex belongs to the thread that took it. "
        f"Allowed: {', '.join(allowed) or 'none'}. threading.Lock does not check its owner (an "
        "accident of its C implementation, not a licence: use it as a mutex only); a "
        "Semaphore has no owner by design. "
        f"Allowed and reported: {', '.join(warned) or 'none'}: fermion's checked lock (what "
        "fermion.sync.Lock() returns with checks on: fermion.check.enable() or "
        "FERMION_CHECK=1) keeps threading.Lock's rule, so programs that use a lock as a "
        "signal still run, and warns, naming the owner, where it took the lock, and the "
        "thread that released it."
    )
    holds = 0.01 if ctx.quick else 0.02
    threads = 6
    permits: dict[str, Any] = {}
    for n in (1, 2, 3):
        ctx.progress(f"Semaphore({n}) with {threads} threads")
        most, seconds = program["most_inside"](threading.Semaphore(n), threads, holds)
        permits[str(n)] = {"most_inside": most, "seconds": seconds}
    section.say(
        f"2. A semaphore is a generalised mutex: {threads} threads each hold it {holds * 1e3:g} ms."
    )
    section.show(
        "\n".join(
            [f"{'semaphore':<22} {'most inside at once':>20} {'all done in':>12}"]
            + [
                f"{f'Semaphore({n})':<22} {p['most_inside']:>20} {p['seconds'] * 1e3:>9.0f} ms"
                for n, p in permits.items()
            ]
        )
    )
    one = permits["1"]
    section.say(
        f"Semaphore(1) is a mutex ({one['most_inside']} inside at a time, "
        f"{one['seconds'] * 1e3:.0f} ms in all); Semaphore(n) lets n in "
        f"({permits['2']['most_inside']} and {permits['3']['most_inside']} here), so the "
        f"work ends in {permits['2']['seconds'] * 1e3:.0f} and "
        f"{permits['3']['seconds'] * 1e3:.0f} ms: a pool of n connections, n licences."
    )
    ctx.progress("a semaphore as a signal")
    rounds = 100 if ctx.quick else 200
    latency = program["signal_latency"](rounds)
    section.say(
        f"3. A semaphore as a signal: one thread releases, another waiting in acquire wakes "
        f"up, median {latency * 1e6:.0f} µs later ({rounds} rounds). A mutex cannot do this: "
        "the thread that signals is not the one that took it."
    )
    section.data.update(
        {"release_by_stranger": outcomes, "permits": permits, "signal_latency": latency}
    )
