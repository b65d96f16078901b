"""The wait-for graph: pure functions over a snapshot of who waits for what.

A thread waits on a primitive; the primitive's *owners* (the thread holding a lock,
the thread being joined) are the threads it waits for. A **cycle** of unbounded waits
is a deadlock; a **stall** is every relevant thread in an unbounded wait that cannot
complete now. No threads, no clocks: the wiring in :mod:`fermion.check._checker`
feeds these the registry's snapshot, and the tests feed them plain objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

__all__ = ["StallConfirmer", "WaitLike", "find_cycle", "find_stall"]


class WaitLike(Protocol):
    """What the graph needs of a wait (``fermion.sync._registry.Wait`` has it)."""

    thread: int
    timeout: float | None
    owners: Callable[[], tuple[int, ...]]
    ready: Callable[[], bool]


W = TypeVar("W", bound=WaitLike)


def find_cycle(start: int, waits: Mapping[int, W]) -> list[W] | None:
    """The waits forming a cycle through thread *start*, in order, or ``None``.

    Only unbounded waits are edges: a wait with a timeout will end by itself. The
    first wait returned is *start*'s; each next one belongs to an owner of the
    previous wait's primitive.
    """
    path: list[W] = []
    visited: set[int] = set()

    def visit(thread: int) -> list[W] | None:
        wait = waits.get(thread)
        if wait is None or wait.timeout is not None:
            return None
        path.append(wait)
        for owner in wait.owners():
            if owner == start:
                return list(path)
            if owner not in visited:
                visited.add(owner)
                found = visit(owner)
                if found is not None:
                    return found
        path.pop()
        return None

    visited.add(start)
    return visit(start)


def find_stall(threads: Iterable[int], waits: Mapping[int, W]) -> list[W] | None:
    """Every thread's wait if all of *threads* are stuck for good, else ``None``.

    Stuck means: in an unbounded wait (a timed wait ends by itself), really blocked
    (``blocked`` is not false: the wait's own deadlock check has finished), that could not
    complete now (``ready()`` is false: the lock is still held, the event unset...).
    A thread outside any wait (running, sleeping, in I/O) may still wake the others,
    so it rules a stall out. *threads* is the set the caller considers (live threads
    minus the checker's own); it must hold at least one thread.
    """
    stalled: list[W] = []
    for thread in threads:
        wait = waits.get(thread)
        if (
            wait is None
            or wait.timeout is not None
            or not getattr(wait, "blocked", True)
            or wait.ready()
        ):
            return None
        stalled.append(wait)
    return stalled or None


class StallConfirmer:
    """Reports a stall only once it was seen, unchanged, in two consecutive looks.

    A hand-off in flight (a lock just released, its waiter not yet scheduled) can
    look like a stall for an instant; the same waits still there a poll later are not
    in flight. Fed the result of :func:`find_stall` at each poll.
    """

    def __init__(self) -> None:
        self._previous: tuple[int, ...] | None = None

    def observe(self, stalled: Sequence[W] | None) -> Sequence[W] | None:
        if stalled is None:
            self._previous = None
            return None
        key = tuple(sorted(id(w) for w in stalled))
        if key == self._previous:
            self._previous = None
            return stalled
        self._previous = key
        return None
