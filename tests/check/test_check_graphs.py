"""The pure state machines — wait-for graph, lock-order graph, starvation tracker — with no threads."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fermion.check._lockorder import LockOrderGraph, OrderEdge
from fermion.check._starvation import StarvationTracker
from fermion.check._waitfor import StallConfirmer, find_cycle, find_stall
from fermion.sync._registry import Site


@dataclass
class FakeWait:
    thread: int
    owner_threads: tuple[int, ...] = ()
    timeout: float | None = None
    is_ready: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    def owners(self) -> tuple[int, ...]:
        return self.owner_threads

    def ready(self) -> bool:
        return self.is_ready


def test_two_thread_cycle_is_found_from_either_end() -> None:
    waits = {1: FakeWait(1, (2,)), 2: FakeWait(2, (1,))}
    assert [w.thread for w in find_cycle(1, waits)] == [1, 2]  # type: ignore[union-attr]
    assert [w.thread for w in find_cycle(2, waits)] == [2, 1]  # type: ignore[union-attr]


def test_self_wait_is_a_cycle_of_one() -> None:
    assert [w.thread for w in find_cycle(7, {7: FakeWait(7, (7,))})] == [7]  # type: ignore[union-attr]


def test_chain_without_cycle_and_cycle_not_through_start() -> None:
    waits = {1: FakeWait(1, (2,)), 2: FakeWait(2, (3,)), 3: FakeWait(3, ())}
    assert find_cycle(1, waits) is None
    # 2 and 3 deadlock each other; 1 waits on them but is not part of the cycle
    waits = {1: FakeWait(1, (2,)), 2: FakeWait(2, (3,)), 3: FakeWait(3, (2,))}
    assert find_cycle(1, waits) is None
    assert [w.thread for w in find_cycle(3, waits)] == [3, 2]  # type: ignore[union-attr]


def test_timed_waits_are_not_edges() -> None:
    waits = {1: FakeWait(1, (2,)), 2: FakeWait(2, (1,), timeout=1.0)}
    assert find_cycle(1, waits) is None


def test_three_thread_cycle_among_several_owners() -> None:
    waits = {1: FakeWait(1, (5, 2)), 2: FakeWait(2, (3,)), 3: FakeWait(3, (1,)), 5: FakeWait(5, ())}
    assert [w.thread for w in find_cycle(1, waits)] == [1, 2, 3]  # type: ignore[union-attr]


def test_stall_needs_every_thread_stuck_for_good() -> None:
    waits = {1: FakeWait(1), 2: FakeWait(2)}
    assert [w.thread for w in find_stall([1, 2], waits)] == [1, 2]  # type: ignore[union-attr]
    assert find_stall([1, 2, 3], waits) is None  # thread 3 is running (or sleeping)
    assert find_stall([1, 2], {1: FakeWait(1), 2: FakeWait(2, timeout=5.0)}) is None
    assert find_stall([1, 2], {1: FakeWait(1), 2: FakeWait(2, is_ready=True)}) is None
    assert find_stall([], {}) is None


def test_stall_is_confirmed_only_when_seen_twice_unchanged() -> None:
    confirmer = StallConfirmer()
    first = [FakeWait(1), FakeWait(2)]
    assert confirmer.observe(first) is None
    assert confirmer.observe(first) == first
    assert confirmer.observe(first) is None  # reported once; starts over
    other = [FakeWait(1)]
    assert confirmer.observe(other) is None
    assert confirmer.observe([FakeWait(1)]) is None  # a different wait object: not the same stall
    assert confirmer.observe(None) is None


def _edge(a: str, b: str, thread: str = "T") -> OrderEdge:
    return OrderEdge(a, b, a, b, Site("f.py", 1, "f"), Site("f.py", 2, "f"), thread)


def test_lock_order_cycle_is_reported_once() -> None:
    graph = LockOrderGraph()
    assert graph.add(_edge("A", "B", "T1")) is None
    assert graph.add(_edge("A", "B", "T1")) is None  # known edge
    cycle = graph.add(_edge("B", "A", "T2"))
    assert cycle is not None and [(e.first, e.second) for e in cycle] == [("B", "A"), ("A", "B")]
    assert graph.add(_edge("B", "A", "T3")) is None
    assert len(graph) == 2


def test_lock_order_ignores_self_edges_and_finds_long_cycles() -> None:
    graph = LockOrderGraph()
    assert graph.add(_edge("A", "A")) is None
    assert graph.add(_edge("A", "B")) is None
    assert graph.add(_edge("B", "C")) is None
    assert graph.add(_edge("A", "C")) is None  # consistent: A before B before C
    cycle = graph.add(_edge("C", "A"))
    assert cycle is not None and [e.first for e in cycle] == ["C", "A"]
    assert {e.second for e in cycle} == {"A", "C"}


def test_starvation_tracker_flags_once_past_both_thresholds() -> None:
    tracker = StarvationTracker(threshold=1.0, min_others=10)
    assert not tracker.wait_starves("w", waited=0.5, others=100)
    assert not tracker.wait_starves("w", waited=2.0, others=3)
    assert tracker.wait_starves("w", waited=2.0, others=10)
    assert not tracker.wait_starves("w", waited=3.0, others=50)
    # A predicate loop on a condition is judged the same way, whether or not it was woken.
    assert tracker.wait_starves(("streak", 1), waited=5.0, others=50)


def test_starvation_tracker_names_where_others_were_served_while_the_wait_lasts() -> None:
    tracker = StarvationTracker(threshold=1.0, min_others=2)
    read, done = Site("rw.py", 10, "acquire_read"), Site("rw.py", 20, "release_read")
    tracker.served("w", read, 7)
    tracker.served("w", done, 8)
    tracker.served("w", read, 9)  # the same line again: listed once, latest thread
    tracker.served("other", done, 7)
    assert tracker.served_sites("w") == [(read, 9), (done, 8)]
    tracker.retain(["w"])  # "other" ended
    assert tracker.served_sites("other") == []
    assert tracker.served_sites("w") == [(read, 9), (done, 8)]
    for line in range(100):  # bounded
        tracker.served("w", Site("rw.py", 100 + line, "f"), 1)
    assert len(tracker.served_sites("w")) == 8
    assert tracker.wait_starves("w", waited=1.0, others=2)
    tracker.retain([])
    assert tracker.served_sites("w") == [] and not tracker.wait_starves("w", 9.0, 99)


def test_starvation_tracker_validates() -> None:
    with pytest.raises(ValueError, match="starvation threshold must be positive, got 0"):
        StarvationTracker(threshold=0)
    with pytest.raises(ValueError, match="min_others must be at least 1, got 0"):
        StarvationTracker(min_others=0)


def test_a_wait_still_in_its_deadlock_check_is_not_stalled() -> None:
    starting = FakeWait(2)
    starting.blocked = False  # type: ignore[attr-defined]
    assert find_stall([1, 2], {1: FakeWait(1), 2: starting}) is None
    starting.blocked = True  # type: ignore[attr-defined]
    assert find_stall([1, 2], {1: FakeWait(1), 2: starting}) is not None


def test_a_full_pool_whose_workers_all_wait_for_its_own_queued_tasks_is_stuck() -> None:
    from fermion.check._pools import PoolView, stuck_pools

    pool = PoolView("P", workers=(1, 2), full=True)
    assert stuck_pools([pool], {1: "P", 2: "P"}) == ["P"]
    assert stuck_pools([pool], {1: "P"}) == []  # worker 2 runs (or is idle): it will serve
    not_full = PoolView("P", workers=(1, 2), full=False)  # may start a third worker
    assert stuck_pools([not_full], {1: "P", 2: "P"}) == []
    assert stuck_pools([PoolView("E", (), True)], {}) == []


def test_pools_waiting_on_each_other_are_stuck_together_and_only_then() -> None:
    from fermion.check._pools import PoolView, stuck_pools

    a, b, c = PoolView("A", (1,), True), PoolView("B", (2,), True), PoolView("C", (3,), True)
    assert stuck_pools([a, b], {1: "B", 2: "A"}) == ["A", "B"]
    # A waits for C, whose worker is busy elsewhere: C may still serve A
    assert stuck_pools([a, b, c], {1: "C", 2: "A"}) == []
    # B's workers wait for A and for B: both stuck once A is
    b2 = PoolView("B", (2, 4), True)
    assert stuck_pools([a, b2], {1: "B", 2: "A", 4: "B"}) == ["A", "B"]


def test_fork_hazards_are_the_locks_other_threads_hold() -> None:
    from fermion.check._fork import fork_hazards

    assert fork_hazards(1, {1: ["mine"], 2: ["a", "b"], 3: []}) == [(2, "a"), (2, "b")]
    assert fork_hazards(1, {1: ["mine"]}) == []
    assert fork_hazards(1, {}) == []
    # thread 2 is inside its own fork: only the locks it held on entering it count
    a, b = object(), object()
    assert fork_hazards(1, {2: [a, b]}, {2: frozenset({id(a)})}) == [(2, a)]
    assert fork_hazards(1, {2: [b]}, {2: frozenset()}) == []
    assert fork_hazards(1, {2: [b]}, {3: frozenset()}) == [(2, b)]
