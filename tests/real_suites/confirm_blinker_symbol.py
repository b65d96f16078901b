"""Confirms the races ``pytest --fermion-races --fermion-threads 4`` reports in blinker 1.9.0:
``Symbol.__new__`` checks ``cls.symbols`` and then stores into it with no lock, so two
threads asking for one new name can each build their own Symbol, and
``Symbol(name) is Symbol(name)`` (the class's promise) breaks; and ``__new__`` publishes
the new Symbol in ``cls.symbols`` before ``__init__`` sets its ``name``, so another
thread can get it without one (``repr`` raises AttributeError).

    PYTHONPATH=<blinker sdist>/src python tests/real_suites/confirm_blinker_symbol.py

Prints how many of the names gave two different objects, and how many Symbols had no
name yet when their ``repr`` was taken (on free-threaded 3.13t some do; with the GIL,
practically none: the races are there, the interleavings are rare).
"""

from __future__ import annotations

import sys
import threading

from blinker._utilities import Symbol

THREADS, NAMES, ROUNDS = 8, 2000, 5


def work(barrier: threading.Barrier, prefix: str, row: list[object], nameless: list[int]) -> None:
    barrier.wait(30)
    for i in range(NAMES):
        symbol = row[i] = Symbol(f"{prefix}-{i}")
        try:
            repr(symbol)
        except AttributeError:
            nameless.append(i)


def main() -> None:
    broken = 0
    nameless: list[int] = []  # list.append: atomic, no lock needed
    for round_ in range(ROUNDS):
        got: list[list[object]] = [[None] * NAMES for _ in range(THREADS)]
        barrier = threading.Barrier(THREADS)
        threads = [
            threading.Thread(target=work, args=(barrier, f"r{round_}", got[t], nameless))
            for t in range(THREADS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        broken += sum(1 for i in range(NAMES) if len({id(row[i]) for row in got}) > 1)
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(
        f"Python {sys.version.split()[0]} (GIL {'on' if gil else 'off'}): {broken} of "
        f"{ROUNDS * NAMES} names gave two different Symbol objects; {len(nameless)} of "
        f"{ROUNDS * NAMES * THREADS} Symbols had no name yet when their repr was taken"
    )


if __name__ == "__main__":
    main()
