"""The starvation tracker: which waits have gone on too long while others progressed.

Two patterns: a waiter blocked past ``threshold`` seconds while other threads took the
same primitive at least ``min_others`` times; and a thread that re-waited on one
condition at least ``min_rewaits`` times over ``threshold`` seconds while other
threads left that condition at least ``min_others`` times. Pure: it is told the
numbers and says when a wait first crosses the line (once per wait or streak).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["StarvationTracker"]


@dataclass
class StarvationTracker:
    threshold: float = 1.0
    min_others: int = 20
    min_rewaits: int = 3

    def __post_init__(self) -> None:
        if self.threshold <= 0:
            raise ValueError(f"starvation threshold must be positive, got {self.threshold}")
        if self.min_others < 1:
            raise ValueError(f"min_others must be at least 1, got {self.min_others}")
        self._flagged: set[Hashable] = set()

    def wait_starves(self, key: Hashable, waited: float, others: int) -> bool:
        """Whether the wait *key* (waited seconds, others' acquisitions since) just starved."""
        if key in self._flagged or waited < self.threshold or others < self.min_others:
            return False
        self._flagged.add(key)
        return True

    def streak_starves(self, key: Hashable, waited: float, rewaits: int, others: int) -> bool:
        """Whether the condition-wait streak *key* just starved."""
        if key in self._flagged or rewaits < self.min_rewaits:
            return False
        return self.wait_starves(key, waited, others)

    def forget(self, key: Hashable) -> None:
        self._flagged.discard(key)
