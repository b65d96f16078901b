"""The starvation tracker: which waits have gone on too long while others were served.

A wait starves once it has lasted ``threshold`` seconds while other threads were served
at least ``min_others`` times: they took the same lock, semaphore or RWLock, or — for a
thread in a predicate loop on a condition (its first ``wait()`` up to its release of the
lock, across re-waits) — entered that condition or left it after their own waits. The
tracker also collects where those others were served (the sites it is told of), so a
finding names the waiter's line and theirs. Pure: it is told the numbers and the sites,
says when a wait first crosses the line (once per wait or predicate loop), and keeps
the sites only of waits still in progress (:meth:`retain`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from fermion.sync._registry import Site

__all__ = ["StarvationTracker"]

MAX_SITES = 8


@dataclass
class StarvationTracker:
    threshold: float = 1.0
    min_others: int = 20

    def __post_init__(self) -> None:
        if self.threshold <= 0:
            raise ValueError(f"starvation threshold must be positive, got {self.threshold}")
        if self.min_others < 1:
            raise ValueError(f"min_others must be at least 1, got {self.min_others}")
        self._flagged: set[Hashable] = set()
        self._served: dict[Hashable, dict[Site, int]] = {}

    def wait_starves(self, key: Hashable, waited: float, others: int) -> bool:
        """Whether the wait *key* (waited seconds, others served since) just starved."""
        if key in self._flagged or waited < self.threshold or others < self.min_others:
            return False
        self._flagged.add(key)
        return True

    def served(self, key: Hashable, site: Site, thread: int) -> None:
        """Another thread (*thread*) was served at *site* during the wait *key*."""
        sites = self._served.setdefault(key, {})
        if site in sites or len(sites) < MAX_SITES:
            sites[site] = thread

    def served_sites(self, key: Hashable) -> list[tuple[Site, int]]:
        """Where others were served during *key*, first seen first, with their threads."""
        return list(self._served.get(key, {}).items())

    def retain(self, keys: Iterable[Hashable]) -> None:
        """Forget the sites of waits not in *keys* (they ended); findings stay reported."""
        live = set(keys)
        for key in [k for k in self._served if k not in live]:
            del self._served[key]

    def forget(self, key: Hashable) -> None:
        self._flagged.discard(key)
        self._served.pop(key, None)
