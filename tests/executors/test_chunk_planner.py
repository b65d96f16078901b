"""The ChunkPlanner alone: no threads, no clock, just numbers in and sizes out."""

from __future__ import annotations

import heapq
import math

import pytest

from fermion.executors import ChunkPlanner


def issue(planner: ChunkPlanner, remaining: int | None = None) -> int:
    size = planner.next_size(remaining)
    planner.chunk_issued()
    return size


def test_warm_up_starts_small_and_doubles_per_round_of_workers() -> None:
    planner = ChunkPlanner(2)
    assert [issue(planner) for _ in range(8)] == [1, 1, 2, 2, 4, 4, 8, 8]


def test_next_size_is_a_query() -> None:
    planner = ChunkPlanner(3)
    assert planner.next_size() == planner.next_size() == 1


def test_size_targets_the_chunk_duration_from_measurements() -> None:
    planner = ChunkPlanner(2, target_seconds=0.02)
    planner.record(1000, 0.01)  # 10 µs per item
    assert planner.seconds_per_item == pytest.approx(1e-5)
    assert planner.next_size() == 2000  # 20 ms of work


def test_growth_is_capped_while_measurements_are_small() -> None:
    planner = ChunkPlanner(2, target_seconds=0.02)
    planner.record(2, 1e-6)  # looks nearly free, but only 2 items were measured
    assert planner.next_size() == 2 * ChunkPlanner.GROWTH


def test_slow_tasks_go_one_at_a_time() -> None:
    planner = ChunkPlanner(4)
    planner.record(1, 0.5)
    assert planner.next_size() == 1


def test_estimate_follows_recent_measurements() -> None:
    planner = ChunkPlanner(1, target_seconds=0.02)
    planner.record(100, 0.001)
    for _ in range(20):
        planner.record(100, 0.1)  # the tasks became slow
    assert planner.next_size() <= 25


def test_tail_shrinks_chunks_so_workers_finish_together() -> None:
    planner = ChunkPlanner(2, target_seconds=0.02, tail_seconds=0.0)
    planner.record(10_000, 0.01)  # 1 µs per item: ideal chunk 20,000
    assert planner.next_size(remaining=100_000) == 20_000
    assert planner.next_size(remaining=1000) == 250  # remaining / (2 * workers)
    assert planner.next_size(remaining=3) == 1


def test_tail_keeps_a_floor_of_work_per_chunk() -> None:
    planner = ChunkPlanner(2, target_seconds=0.02, tail_seconds=0.002)
    planner.record(1000, 0.001)
    assert planner.next_size(remaining=1000) == 1000  # 2 ms of work is 2000 items: all


def test_never_more_than_remaining_or_max_size() -> None:
    planner = ChunkPlanner(2, max_size=64)
    planner.record(1000, 1e-6)
    assert planner.next_size() == 64
    assert planner.next_size(remaining=5) <= 5


def test_nonsense_measurements_are_ignored() -> None:
    planner = ChunkPlanner(2)
    planner.record(0, 1.0)
    planner.record(10, math.nan)
    planner.record(10, -1.0)
    assert planner.seconds_per_item is None


@pytest.mark.parametrize(("workers", "max_size"), [(0, None), (2, 0)])
def test_invalid_arguments(workers: int, max_size: int | None) -> None:
    with pytest.raises(ValueError, match="ChunkPlanner"):
        ChunkPlanner(workers, max_size=max_size)


def simulate(n: int, workers: int, per_item: float, overhead: float) -> tuple[float, int]:
    """Event-driven simulation of a pool fed by the planner, with at most 2 chunks per
    worker in flight (as the Executor does). Returns (makespan, chunks)."""
    planner = ChunkPlanner(workers)
    free_at = [0.0] * workers  # when each worker is next free
    in_flight: list[tuple[float, int, float]] = []  # (finish time, items, start)
    now, left, chunks = 0.0, n, 0
    while left or in_flight:
        while left and len(in_flight) < 2 * workers:
            size = planner.next_size(left)
            planner.chunk_issued()
            left -= size
            chunks += 1
            w = min(range(workers), key=free_at.__getitem__)
            start = max(now, free_at[w])
            free_at[w] = start + overhead + size * per_item
            heapq.heappush(in_flight, (free_at[w], size, start))
        finish, size, start = heapq.heappop(in_flight)
        now = finish
        planner.record(size, finish - start)
    return now, chunks


@pytest.mark.parametrize(
    ("n", "per_item", "overhead"),
    [
        (100_000, 1e-7, 1e-4),  # tiny tasks, costly round trips (B1)
        (10_000, 1e-5, 1e-4),
        (64, 0.02, 1e-4),  # 20 ms tasks (B3)
        (1000, 1e-3, 5e-5),
    ],
)
@pytest.mark.parametrize("workers", [1, 2, 8])
def test_simulated_runs_are_near_ideal_with_few_chunks(
    n: int, workers: int, per_item: float, overhead: float
) -> None:
    makespan, chunks = simulate(n, workers, per_item, overhead)
    ideal = n * per_item / workers
    # Near the ideal: at most ~15% over, plus a few round trips of warm-up and tail.
    assert makespan <= ideal * 1.15 + 40 * overhead + per_item, (makespan, ideal, chunks)
    if per_item < overhead:  # tiny tasks: chunking must amortise the round trips
        assert chunks <= n / 50, chunks
