"""How many items each chunk of a ``map``/``imap`` takes: a pure, thread-free planner.

Sending items one at a time to a process pool costs a round trip each (about 100 µs),
which swamps tiny tasks; sending huge chunks leaves workers idle at the end and hides
progress. The planner needs no tuning:

1. **Warm-up.** Before anything is measured, chunks are small: the first ``workers``
   chunks take 1 item, the next ``workers`` 2, then 4, ...
2. **Sized by measurement.** Each finished chunk reports ``(items, seconds)``. From a
   recent-weighted estimate of the time per item, a chunk takes ``target_seconds``
   of work (20 ms by default), so the fixed cost per chunk is amortised to around 1 %.
   A chunk grows at most 32x over the largest one measured, in case the estimate is
   off. The cap is that high for tiny tasks: the first measurements are mostly round
   trip (about 100 µs for a 1-item chunk), and with 100,000 items of 0.1 µs each,
   each round of growth is a round trip the workers spend waiting; 1, 32, 1,024,
   then the tail's size takes three rounds where 8x took six. For slow tasks the
   estimate, not the cap, sizes the chunks.
3. **Tail.** When the number of items left is known, a chunk takes at most
   ``remaining / (2 * workers)`` (guided self-scheduling): chunks shrink towards the
   end so that all workers finish at about the same time, but not below about
   ``tail_seconds`` of work.

The planner holds no lock and starts no thread; its owner serialises the calls.
"""

from __future__ import annotations

import math

__all__ = ["ChunkPlanner"]


class ChunkPlanner:
    """Plans chunk sizes from measured chunk durations. Not thread-safe by design."""

    #: Weight kept by older measurements at each new one.
    DECAY = 0.7
    #: A chunk is at most this many times the largest chunk measured so far.
    GROWTH = 32

    def __init__(
        self,
        workers: int,
        *,
        target_seconds: float = 0.02,
        tail_seconds: float = 0.002,
        max_size: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"ChunkPlanner needs at least 1 worker, got {workers}")
        if max_size is not None and max_size < 1:
            raise ValueError(f"ChunkPlanner max_size must be at least 1, got {max_size}")
        self.workers = workers
        self.target_seconds = target_seconds
        self.tail_seconds = tail_seconds
        self.max_size = max_size
        self._weighted_seconds = 0.0
        self._weighted_items = 0.0
        self._largest_measured = 0
        self._planned_unmeasured = 0

    @property
    def seconds_per_item(self) -> float | None:
        """The current estimate, or None before the first measurement."""
        if self._weighted_items <= 0:
            return None
        return self._weighted_seconds / self._weighted_items

    def record(self, items: int, seconds: float) -> None:
        """A chunk of ``items`` items took ``seconds`` (from start to completion)."""
        if items < 1 or not math.isfinite(seconds) or seconds < 0:
            return
        self._weighted_seconds = self._weighted_seconds * self.DECAY + seconds
        self._weighted_items = self._weighted_items * self.DECAY + items
        self._largest_measured = max(self._largest_measured, items)

    def chunk_issued(self) -> None:
        """A chunk of the size last planned was sent; warm-up sizes move on."""
        if self.seconds_per_item is None:
            self._planned_unmeasured += 1

    def next_size(self, remaining: int | None = None) -> int:
        """Items for the next chunk; ``remaining`` is how many are left, if known.

        A query only: call ``chunk_issued()`` once the chunk is actually sent.
        """
        per_item = self.seconds_per_item
        if per_item is None:
            size = 2 ** min(self._planned_unmeasured // self.workers, 20)
        else:
            ideal = self.target_seconds / per_item if per_item > 0 else math.inf
            size = round(min(ideal, self._largest_measured * self.GROWTH))
        if remaining is not None:
            tail = math.ceil(remaining / (2 * self.workers))
            floor = 1
            if per_item is not None and per_item > 0:
                floor = round(min(self.tail_seconds / per_item, remaining))
            size = min(size, max(tail, floor), remaining)
        if self.max_size is not None:
            size = min(size, self.max_size)
        return max(1, size)
