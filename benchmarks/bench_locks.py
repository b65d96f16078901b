"""Lock costs: checked vs unchecked vs threading, and fair/RW locks under contention.

Measures, in one process and the same loop:

1. uncontended ``with lock:`` cost of threading.Lock, fermion's unchecked Lock (must be
   threading's own), checked Lock and checked RLock (goal: at most 4x threading.Lock);
2. contended throughput (acquisitions per second, N threads) of threading.Lock,
   FairLock and a Condition-based FIFO lock; RWLock (each policy) with a read-mostly
   load vs a Condition-based readers-writer lock;
3. time from a deadlock forming to its report (wait-for cycle: at once; global stall:
   the watchdog's confirmation window).

``--quick`` runs a few thousand iterations for a smoke test; the numbers to quote
come from a full run on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
import timeit
from collections.abc import Callable

from fermion import check
from fermion.errors import DeadlockError
from fermion.sync import CheckedLock, CheckedRLock, FairLock, Lock, RLock, RWLock


def with_cost(lock: object, number: int, repeat: int = 3) -> float:
    """Best-of-*repeat* nanoseconds per ``with lock: pass``."""
    timer = timeit.Timer("with lock:\n    pass", globals={"lock": lock})
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def with_costs(
    locks: dict[str, object], number: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Per lock: median ns per ``with lock: pass`` and median ratio to the first lock.

    The locks are timed in turn within each round and each round's ratio uses that
    round's baseline, so a machine that slows down or speeds up mid-run (other
    processes, frequency scaling) moves numerator and denominator together.
    """
    names = list(locks)
    costs: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        base = with_cost(locks[names[0]], number)
        costs[names[0]].append(base)
        ratios[names[0]].append(1.0)
        for name in names[1:]:
            ns = with_cost(locks[name], number)
            costs[name].append(ns)
            ratios[name].append(ns / base)
    return {
        name: (statistics.median(costs[name]), statistics.median(ratios[name])) for name in names
    }


class ConditionFifoLock:
    """The textbook FIFO lock on a Condition (tickets), to compare FairLock against."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            self._cond.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


class ConditionRWLock:
    """The textbook readers-preferring RW lock on a Condition."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False

    def acquire_read(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._readers)
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()


def contended(enter_exit: Callable[[], None], threads: int, seconds: float) -> float:
    """Acquisitions per second with *threads* threads hammering ``enter_exit``."""
    stop = threading.Event()
    counts = [0] * threads
    start = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        start.wait()
        n = 0
        while not stop.is_set():
            for _ in range(50):
                enter_exit()
            n += 50
        counts[i] = n

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


def with_lock(lock: object) -> Callable[[], None]:
    def op() -> None:
        with lock:  # type: ignore[attr-defined]
            pass

    return op


def rw_mix(
    acquire_read: Callable[[], None],
    release_read: Callable[[], None],
    acquire_write: Callable[[], None],
    release_write: Callable[[], None],
) -> Callable[[], None]:
    counter = [0]

    def op() -> None:
        counter[0] += 1
        if counter[0] % 10 == 0:
            acquire_write()
            release_write()
        else:
            acquire_read()
            release_read()

    return op


def deadlock_latency() -> tuple[float, float]:
    """Seconds from a cycle/stall forming to DeadlockError, under fermion.check."""
    with check.enable(on_lock_order="record", starvation=False):
        a, b = CheckedLock(), CheckedLock()
        holds = threading.Barrier(2)
        closed_at: list[float] = []
        raised_at: list[float] = []

        def side(first: CheckedLock, second: CheckedLock, closer: bool) -> None:
            with first:
                holds.wait()
                if closer:
                    time.sleep(0.05)  # let the other side block first
                    closed_at.append(time.perf_counter())
                try:
                    with second:
                        pass
                except DeadlockError:
                    raised_at.append(time.perf_counter())

        ts = [
            threading.Thread(target=side, args=(a, b, False)),
            threading.Thread(target=side, args=(b, a, True)),
        ]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        cycle = raised_at[0] - closed_at[0]

        event = (
            threading.Event() if False else __import__("fermion.sync", fromlist=["Event"]).Event()
        )
        began = time.perf_counter()
        with contextlib.suppress(DeadlockError):
            event.wait()
        stall = time.perf_counter() - began
    check.clear_findings()
    return cycle, stall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for a smoke test")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    number, rounds, seconds = (20_000, 5, 0.2) if args.quick else (200_000, 21, 2.0)

    print(
        f"python {sys.version.split()[0]}  gil={'on' if getattr(sys, '_is_gil_enabled', lambda: True)() else 'off'}"
    )
    print(
        f"\n1. uncontended `with lock: pass` (median of {rounds} interleaved rounds; "
        "ratio = median of per-round ratios)"
    )
    locks: dict[str, object] = {
        "threading.Lock": threading.Lock(),
        "fermion.sync.Lock (unchecked)": Lock(),
        "threading.RLock": threading.RLock(),
        "fermion.sync.RLock (unchecked)": RLock(),
        "checked Lock": CheckedLock(),
        "checked RLock": CheckedRLock(),
        "checked Lock, threading's semantics": CheckedLock(strict=False),
        "FairLock (unchecked)": FairLock(),
    }
    rows = with_costs(locks, number, rounds)
    with check.enable(starvation=False):  # what `fermion check` runs: the checker listening
        enabled = with_costs(
            {
                "threading.Lock": threading.Lock(),
                "checked Lock under check.enable()": Lock(),
                "checked RLock under check.enable()": RLock(),
            },
            number,
            rounds,
        )
    rows.update({name: row for name, row in enabled.items() if name != "threading.Lock"})
    for name, (ns, ratio) in rows.items():
        print(f"   {name:38s} {ns:8.1f} ns   {ratio:5.2f}x threading.Lock")
    for name in ("checked Lock", "checked RLock"):
        ratio = rows[name][1]
        print(f"   goal: {name} <= 4x -> {'met' if ratio <= 4 else 'NOT met'} ({ratio:.2f}x)")

    print(f"\n2. contended throughput, {args.threads} threads (acquisitions/s)")
    plain = contended(with_lock(threading.Lock()), args.threads, seconds)
    fair = contended(with_lock(FairLock()), args.threads, seconds)
    cond_fifo = contended(with_lock(ConditionFifoLock()), args.threads, seconds)
    print(f"   threading.Lock            {plain:12.0f}")
    print(
        f"   FairLock                  {fair:12.0f}   {fair / cond_fifo:5.2f}x Condition FIFO lock, {fair / plain:5.2f}x Lock"
    )
    print(f"   Condition FIFO lock       {cond_fifo:12.0f}")
    crw = ConditionRWLock()
    cond_rw = contended(
        rw_mix(crw.acquire_read, crw.release_read, crw.acquire_write, crw.release_write),
        args.threads,
        seconds,
    )
    print(f"   Condition RW lock (90% reads) {cond_rw:8.0f}")
    for policy in ("fair", "readers", "writers"):
        rw = RWLock(policy)
        rate = contended(
            rw_mix(rw.acquire_read, rw.release_read, rw.acquire_write, rw.release_write),
            args.threads,
            seconds,
        )
        print(
            f"   RWLock({policy!r:9s}) 90% reads {rate:10.0f}   {rate / cond_rw:5.2f}x Condition RW lock"
        )

    print("\n3. time from a deadlock forming to its report")
    cycle, stall = deadlock_latency()
    print(
        f"   wait-for cycle (ABBA)     {cycle * 1e3:8.1f} ms (includes a 0 ms hand-off; raised before blocking)"
    )
    print(f"   global stall (Event)      {stall * 1e3:8.1f} ms (watchdog: two polls of 250 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
