"""The race analysis as a pure state machine: lockset (Eraser) plus happens-before.

Fed plain events — a thread forks or joins, a hand-off is released or acquired, a
thread reads or writes a location holding a set of locks — it decides which pairs of
accesses race. No threads, no frames, no imports of the runtime: tests drive it
directly, and the runtime (``_runtime``) feeds it under one lock.

The rule (the "hybrid" of lockset and happens-before detectors, as in ThreadSanitizer's
first version): two accesses to one location by different threads race when

* neither happens-before the other, where happens-before comes from thread fork/join
  and from hand-offs (queue put→get, event set→wait, condition notify→wake, barrier,
  future result, executor submit→run) but *not* from lock release→acquire, so the
  verdict does not depend on which thread happened to take a lock first; and
* they hold no lock in common; and
* one writes and the other reads. A blind write racing only with other blind writes
  is one atomic store against another (last writer wins), which the lecture's
  model of atomic built-in operations allows; a read-modify-write (``x += 1``)
  reads as well as writes, so it races with any concurrent writer.

Per location the state follows Eraser's machine — *virgin* (never accessed),
*exclusive* to one thread (no check needed), then *shared* or *shared-modified* once a
second thread touches it while the first one's accesses do not happen-before; when
every other thread's accesses happen-before the new one (init before start, read
after join, a hand-off through a queue), the location goes back to exclusive to its
new owner. This is how initialisation and hand-offs stay quiet without a lock.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["EXCLUSIVE", "SHARED", "SHARED_MODIFIED", "VIRGIN", "Access", "Race", "RaceDetector"]

VIRGIN = "virgin"
EXCLUSIVE = "exclusive"
SHARED = "shared"
SHARED_MODIFIED = "shared-modified"

# How many accesses with distinct locksets one thread keeps per location and kind.
_MAX_ENTRIES_PER_THREAD = 8


class Access(NamedTuple):
    """One recorded access: which thread, at which of its clock ticks, where, holding what.

    A named tuple rather than a dataclass: one is made per recorded access.
    """

    thread: int
    clock: int
    site: int
    write: bool
    locks: frozenset[Hashable]


@dataclass(frozen=True)
class Race:
    """Two accesses to one location that race. ``first`` came first in this run."""

    location: str
    detail: str
    first: Access
    second: Access


class _Shadow:
    """What the detector remembers of one location."""

    __slots__ = ("owner", "reads", "state", "writes")

    def __init__(self, owner: int) -> None:
        self.state = EXCLUSIVE
        self.owner = owner
        # thread -> accesses of that thread, one per distinct lockset, latest clock.
        self.reads: dict[int, list[Access]] = {}
        self.writes: dict[int, list[Access]] = {}


def _remember(table: dict[int, list[Access]], access: Access) -> None:
    entries = table.get(access.thread)
    if entries is None:
        table[access.thread] = [access]
        return
    for i, old in enumerate(entries):
        if old.locks == access.locks:
            # A later access with the same locks races with everything the earlier one
            # did (clocks only grow), so it replaces it.
            entries[i] = access
            return
    if len(entries) >= _MAX_ENTRIES_PER_THREAD:
        del entries[0]
    entries.append(access)


class RaceDetector:
    """Vector clocks per thread and per hand-off token, shadow state per location.

    Threads are small integers handed out by :meth:`new_thread`. Locations are a pair
    ``(owner, field)`` so that everything known about an object can be dropped at once
    when it dies (:meth:`forget`). Not thread-safe: the caller serialises calls.
    """

    def __init__(self) -> None:
        self._clocks: dict[int, dict[int, int]] = {}
        self._tokens: dict[Hashable, dict[int, int]] = {}
        self._shadow: dict[Hashable, dict[Hashable, _Shadow]] = {}
        self._reported: set[tuple[Hashable, frozenset[int]]] = set()
        self._next_thread = 1
        self.races: list[Race] = []

    # -- threads and happens-before ---------------------------------------------------

    def new_thread(self, parent: int | None = None) -> int:
        """A new thread id; with *parent*, everything the parent did so far happens-before it."""
        tid = self._next_thread
        self._next_thread += 1
        clock: dict[int, int] = {}
        if parent is not None:
            parent_clock = self._clocks[parent]
            clock.update(parent_clock)
            parent_clock[parent] += 1
        clock[tid] = 1
        self._clocks[tid] = clock
        return tid

    def release(self, thread: int, token: Hashable) -> None:
        """Release side of a hand-off: what *thread* did so far happens-before acquires of *token*."""
        clock = self._clocks[thread]
        target = self._tokens.get(token)
        if target is None:
            self._tokens[token] = dict(clock)
        else:
            _join_into(target, clock)
        clock[thread] += 1

    def acquire(self, thread: int, token: Hashable) -> None:
        """Acquire side of a hand-off: every earlier release of *token* happens-before what follows."""
        source = self._tokens.get(token)
        if source is not None:
            _join_into(self._clocks[thread], source)

    def discard_token(self, token: Hashable) -> None:
        """Forget a token nobody will acquire again (a finished future, a dead object)."""
        self._tokens.pop(token, None)

    def join(self, thread: int, finished: int) -> None:
        """*thread* joined *finished*: everything *finished* did happens-before what follows."""
        _join_into(self._clocks[thread], self._clocks[finished])

    def happens_before(self, access: Access, thread: int) -> bool:
        """Whether *access* happens-before the next thing *thread* does."""
        return access.clock <= self._clocks[thread].get(access.thread, 0)

    # -- accesses -----------------------------------------------------------------------

    def access(
        self,
        thread: int,
        owner: Hashable,
        field: Hashable,
        site: int,
        *,
        read: bool,
        write: bool,
        locks: frozenset[Hashable],
        location: str,
        detail: str = "",
        group: Hashable = None,
    ) -> None:
        """Record that *thread* read and/or wrote ``(owner, field)`` at *site* holding *locks*.

        *location* names the location in a report (``counter``, ``Stats.hits``,
        ``cache[<key>]``), *detail* adds what varies (the key), and *group* is what two
        findings must share to be one finding (default: *location*); a pair of sites is
        reported once per group.
        """
        fields = self._shadow.get(owner)
        if fields is None:
            fields = self._shadow[owner] = {}
        shadow = fields.get(field)
        clock = self._clocks[thread]
        tick = clock[thread]
        if shadow is None:
            shadow = fields[field] = _Shadow(thread)
        elif shadow.state is not EXCLUSIVE or shadow.owner != thread:
            self._check(
                shadow, thread, clock, read, write, locks, site, tick, location, detail, group
            )
        if read:
            _remember(shadow.reads, Access(thread, tick, site, False, locks))
        if write:
            _remember(shadow.writes, Access(thread, tick, site, True, locks))

    def _check(
        self,
        shadow: _Shadow,
        thread: int,
        clock: dict[int, int],
        read: bool,
        write: bool,
        locks: frozenset[Hashable],
        site: int,
        tick: int,
        location: str,
        detail: str,
        group: Hashable,
    ) -> None:
        current = Access(thread, tick, site, write, locks)
        others_concurrent = False
        others_wrote = False
        for table, is_write_table in ((shadow.writes, True), (shadow.reads, False)):
            for other in list(table):
                if other == thread:
                    continue
                seen = clock.get(other, 0)
                entries = table[other]
                concurrent = [a for a in entries if a.clock > seen]
                if write and len(concurrent) != len(entries):
                    # A write supersedes what happens-before it. A read does not: a
                    # third thread may still race with those earlier accesses.
                    if concurrent:
                        table[other] = concurrent
                    else:
                        del table[other]
                if not concurrent:
                    continue
                others_concurrent = True
                others_wrote = others_wrote or is_write_table
                conflicting = read if is_write_table else write
                if not conflicting:
                    continue
                for previous in concurrent:
                    if not (previous.locks & locks):
                        self._report(location, detail, group, previous, current)
        if not others_concurrent:
            # Everything the other threads did happens-before this access: the location
            # is (again) exclusive to this thread, as after Eraser's initialisation.
            shadow.state = EXCLUSIVE
            shadow.owner = thread
        elif others_wrote or write:
            shadow.state = SHARED_MODIFIED
        else:
            shadow.state = SHARED

    def _report(
        self, location: str, detail: str, group: Hashable, first: Access, second: Access
    ) -> None:
        key = (location if group is None else group, frozenset((first.site, second.site)))
        if key in self._reported:
            return
        self._reported.add(key)
        self.races.append(Race(location, detail, first, second))

    def state_of(self, owner: Hashable, field: Hashable) -> str:
        """Eraser's state of a location: virgin, exclusive, shared or shared-modified."""
        shadow = self._shadow.get(owner, {}).get(field)
        return VIRGIN if shadow is None else shadow.state

    def forget(self, owner: Hashable) -> None:
        """Drop every location of *owner* (an object that died; its id may be reused)."""
        self._shadow.pop(owner, None)

    def statistics(self) -> dict[str, Any]:
        """Counts for tests and benchmarks: threads, tokens, owners, locations, races."""
        return {
            "threads": len(self._clocks),
            "tokens": len(self._tokens),
            "owners": len(self._shadow),
            "locations": sum(len(f) for f in self._shadow.values()),
            "races": len(self.races),
        }


def _join_into(target: dict[int, int], source: dict[int, int]) -> None:
    for thread, tick in source.items():
        if target.get(thread, 0) < tick:
            target[thread] = tick
