"""Many maps at once on one thread pool, some abandoned early: results stay exact.

On free-threaded 3.13t this races for real; repeated so that it means something.
"""

from __future__ import annotations

import random
import threading

import pytest

from fermion import Executor

WAIT = 60.0


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_imaps_and_maps_get_exact_results(round_: int) -> None:
    rng = random.Random(round_)
    plans = [
        (rng.choice(["auto", 1, 3, 50]), rng.choice([True, False]), rng.choice([None, 7, 64]))
        for _ in range(6)
    ]
    failures: list[str] = []
    with Executor("threads", 4) as executor:

        def consume(k: int, chunksize: int | str, ordered: bool, buffersize: int | None) -> None:
            try:
                n = 1500 + k
                got = list(
                    executor.imap(
                        lambda x: x * 3 + k,
                        iter(range(n)),
                        ordered=ordered,
                        chunksize=chunksize,
                        buffersize=buffersize,
                    )
                )
                expected = [x * 3 + k for x in range(n)]
                if (got if ordered else sorted(got)) != expected:
                    failures.append(f"imap {k} {chunksize} {ordered} {buffersize}")
                if list(executor.map(lambda x, y: x - y, range(n), range(n))) != [0] * n:
                    failures.append(f"map {k}")
            except BaseException as exc:  # reported below, with the plan
                failures.append(f"{k}: {exc!r}")

        threads = [
            threading.Thread(target=consume, args=(k, *plan)) for k, plan in enumerate(plans)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert not any(t.is_alive() for t in threads)
    assert failures == []


@pytest.mark.parametrize("backend", ["threads", "serial"])
def test_abandoning_streams_early_leaves_nothing_running(backend: str) -> None:
    with Executor(backend, 3) as executor:
        for i in range(40):
            stream = executor.imap(abs, range(-10_000, 0), chunksize=1 + i % 5, ordered=i % 2 == 0)
            taken = [next(stream) for _ in range(i % 7 + 1)]
            assert len(taken) == i % 7 + 1
            stream.close()  # type: ignore[attr-defined]
        assert executor._runs == set()  # every abandoned run let go of the executor
        assert executor.submit(abs, -1).result(timeout=WAIT) == 1
