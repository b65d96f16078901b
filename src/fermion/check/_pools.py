"""Pool-capacity deadlocks: every worker of a pool waits for a task that only it could run.

A task of a ``concurrent.futures.ThreadPoolExecutor`` that submits to the same pool and
waits for the result holds a worker while it waits. Once every worker of the pool does
that (the pool at its ``max_workers``), the awaited tasks sit in the pool's queue and no
worker will ever be free to run them. Across pools the same holds when pool A's workers
all wait for tasks of pool B whose workers all wait for tasks of A.

Pure: :func:`stuck_pools` is given, per pool, its worker threads and whether it is full,
and for each blocked thread the pool whose *queued* (not yet running) task it waits for;
it returns the pools that can never make progress. The wiring (which thread waits for
which future, which pool a future was queued on) is in :mod:`fermion.check._checker`
and :mod:`fermion.check._patch`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["PoolView", "stuck_pools"]


@dataclass(frozen=True)
class PoolView:
    """One pool as seen now: its key, its worker threads, whether it may start more."""

    key: Hashable
    workers: tuple[int, ...]
    full: bool


def stuck_pools(pools: Sequence[PoolView], awaiting: Mapping[int, Hashable]) -> list[Hashable]:
    """The pools none of whose workers can ever finish, in the order given.

    *awaiting* maps a thread blocked with no timeout on a queued task's future to the
    key of the pool that task is queued on (threads waiting for anything else are not
    in it). A full pool whose every worker is so blocked is stuck if every pool its
    workers wait for is stuck too (the greatest such set: a pool waiting for a pool
    with a free or running worker may still be served).
    """
    targets: dict[Hashable, set[Hashable]] = {}
    for pool in pools:
        if pool.full and pool.workers and all(w in awaiting for w in pool.workers):
            targets[pool.key] = {awaiting[w] for w in pool.workers}
    stuck = set(targets)
    changed = True
    while changed:
        changed = False
        for key in list(stuck):
            if not targets[key] <= stuck:
                stuck.discard(key)
                changed = True
    return [pool.key for pool in pools if pool.key in stuck]
