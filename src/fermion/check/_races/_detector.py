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

Concurrency: on a free-threaded build the threads being checked run truly in parallel,
so one lock around the whole analysis would serialise every recorded access. The state
is split so that threads touching different locations do not contend:

* a thread's vector clock is read and written only by that thread (its accesses and
  hand-offs), so it needs no lock; the clocks sit in a list indexed by thread id, which
  free-threaded CPython reads without locking (a dict with integer keys takes its
  per-object lock on every lookup, and the threads would contend on that instead);
* every location and every hand-off token belongs to one of a fixed array of *stripes*
  (:meth:`RaceDetector.stripe_of`), each a lock and the shadow and token tables of its
  locations and tokens; the caller holds the stripe's lock around :meth:`access`,
  :meth:`forget`, :meth:`release`, :meth:`acquire` and :meth:`discard_token`, so no
  table is ever touched by two threads at once;
* findings go through a lock of their own (rare: only pairs that race);
* no ``dict.get`` on the hot path: on free-threaded CPython 3.13, ``dict.get`` runs
  holding the dictionary's lock, and when the key or value it finds was made by another
  thread that is still running (a shadow made by the thread that first touched the
  location, the clock ticks of a hand-off's releaser, any object passed through a
  queue), its lock-free read fails and it locks the dictionary it already holds: about
  20 microseconds per call, every call (measured on 3.13.5; CPython 3.14 dropped that
  lock, gh-129336). ``key in d`` and ``d[key]`` read the same entries without locking
  (well under a microsecond), so every table here is read with those. A stripe maps
  ``(owner, field)`` to the shadow directly, and a shadow keeps its per-thread accesses
  in lists.

Each location's history is thus still analysed one access at a time, against the
accessing thread's clock at that moment: the same verdicts as under one global lock.
"""

from __future__ import annotations

import _thread
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "EXCLUSIVE",
    "SHAPE",
    "SHARED",
    "SHARED_MODIFIED",
    "VIRGIN",
    "Access",
    "Race",
    "RaceDetector",
]

# The field of a container's *shape*: its key set or length, one location per container
# beside its items. Iterating the container reads it; an insertion, a deletion or a
# resizing method call (``append``, ``pop``, ``clear``...) writes it, blindly (it
# reads nothing). So the rule below makes an iteration concurrent with a resize a race
# (``dictionary changed size during iteration``, or a list's silently skipped items),
# while two resizes alone (two threads inserting different keys, each call atomic) are
# last-writer-wins and no finding. A tuple, so that no attribute name equals it.
SHAPE: Hashable = ("shape",)

VIRGIN = "virgin"
EXCLUSIVE = "exclusive"
SHARED = "shared"
SHARED_MODIFIED = "shared-modified"

# How many accesses with distinct locksets one thread keeps per location and kind.
_MAX_ENTRIES_PER_THREAD = 8

# How many stripe locks guard the locations and tokens. Prime, so that object ids (all
# multiples of 16) spread over every stripe.
STRIPES = 61


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


# One thread's accesses to a location: [thread, [Access, ...]], one per distinct
# lockset, latest clock. A list, not a dict entry (see the module docstring).
_Entries = list[Any]


class _Shadow:
    """What the detector remembers of one location."""

    __slots__ = ("owner", "reads", "state", "writes")

    def __init__(self, owner: int) -> None:
        self.state = EXCLUSIVE
        self.owner = owner
        # Per thread that accessed it, in order of first access: [thread, accesses].
        self.reads: list[_Entries] = []
        self.writes: list[_Entries] = []


def _remember(table: list[_Entries], access: Access) -> None:
    thread = access.thread
    for row in table:
        if row[0] == thread:
            entries: list[Access] = row[1]
            break
    else:
        table.append([thread, [access]])
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
    when it dies (:meth:`forget`).

    Thread-safety contract (see the module docstring): :meth:`new_thread` may be called
    from any thread; :meth:`access`, :meth:`release`, :meth:`acquire`, :meth:`join` and
    :meth:`retire` for thread *t* only from *t* itself (they use its clock unlocked), ``new_thread``
    with a *parent* only from that parent; and the caller holds
    ``lock_for(owner, field)`` around :meth:`access` (``lock_for(owner)`` around
    :meth:`forget`) and ``lock_for(token)`` around the token methods. A tuple owner (a
    module's namespace, ``("module", name)``) has one stripe per field, so unrelated
    globals do not contend; any other owner (an object identity, which :meth:`forget`
    drops when the object dies) one stripe for all its fields.
    """

    def __init__(self) -> None:
        # Thread id -> its vector clock (index 0 unused).
        self._clocks: list[dict[int, int]] = [{}]
        # Thread id -> the token it last released, while it has recorded no access and
        # its clock has taken nothing in since (else None): releasing that token again
        # would publish nothing new (see release).
        self._released: list[Hashable] = [None]
        # Retired thread ids (retire), handed out again by new_thread; threads started.
        self._free: list[int] = []
        self._started = 0
        # Per stripe: token -> clock, (owner, field) -> shadow, and owner -> its fields
        # (for forget).
        self._tokens: list[dict[Hashable, dict[int, int]]] = [{} for _ in range(STRIPES)]
        self._shadow: list[dict[tuple[Hashable, Hashable], _Shadow]] = [{} for _ in range(STRIPES)]
        self._fields: list[dict[Hashable, list[Hashable]]] = [{} for _ in range(STRIPES)]
        self._reported: set[tuple[Hashable, frozenset[int]]] = set()
        self._threads_lock = _thread.allocate_lock()
        self._report_lock = _thread.allocate_lock()
        self.locks = [_thread.allocate_lock() for _ in range(STRIPES)]
        self.races: list[Race] = []

    @staticmethod
    def stripe_of(owner: Hashable, field: Hashable = None) -> int:
        """The stripe of location ``(owner, field)``, or of the token *owner*.

        Unless *owner* is a tuple (a module) the field is ignored: one stripe covers
        all of the owner's fields, so that :meth:`forget` is safe under its lock.
        """
        key = (owner, field) if field is not None and type(owner) is tuple else owner
        return hash(key) % STRIPES

    def lock_for(self, owner: Hashable, field: Hashable = None) -> Any:
        """The lock of :meth:`stripe_of` ``(owner, field)``."""
        return self.locks[self.stripe_of(owner, field)]

    # -- threads and happens-before ---------------------------------------------------

    def new_thread(self, parent: int | None = None, knows: dict[int, int] | None = None) -> int:
        """A new thread id; with *parent*, everything the parent did so far happens-before it.

        *knows* is the clock the new thread takes in as it starts (its start hand-off's).
        A retired thread's id (:meth:`recycle`) is handed out again only when *knows*
        covers everything that thread did: its clock entry then goes on from the retired
        thread's last tick, so the accesses it recorded keep their meaning, and ordering
        the new thread after them is true. (Started before the joiner learnt of the
        retired thread, or by a thread that never did, it gets an id of its own.)
        """
        clock: dict[int, int] = {}
        if parent is not None:
            parent_clock = self._clocks[parent]
            clock.update(parent_clock)
            parent_clock[parent] += 1
            self._released[parent] = None
        with self._threads_lock:
            tid = self._reusable(knows)
            if tid:
                clock[tid] = self._clocks[tid][tid] + 1
                self._clocks[tid] = clock
                self._released[tid] = None
            else:
                tid = len(self._clocks)
                clock[tid] = 1
                self._clocks.append(clock)
                self._released.append(None)
            self._started += 1
        return tid

    def _reusable(self, knows: dict[int, int] | None) -> int:
        """A free id whose retired thread *knows* covers, taken off the free list; else 0.

        A retired clock holds one entry, one tick past the thread's last access (its
        exit release moved it on). Called under ``_threads_lock``.
        """
        if not knows:
            return 0
        free = self._free
        for i in range(len(free) - 1, -1, -1):
            tid = free[i]
            if knows.get(tid, 0) >= self._clocks[tid][tid] - 1:
                del free[i]
                return tid
        return 0

    def token_clock(self, token: Hashable) -> dict[int, int] | None:
        """A copy of what the releases of *token* published so far (None: never released).

        The caller holds ``lock_for(token)``.
        """
        clock = self._tokens[self.stripe_of(token)].get(token)
        return None if clock is None else dict(clock)

    def retire(self, thread: int) -> None:
        """*thread* ended and records nothing more: its clock shrinks to its last tick.

        What it published went through hand-off tokens (its exit's among them), which
        keep their own clocks.
        """
        clock = self._clocks[thread]
        self._clocks[thread] = {thread: clock[thread]}
        self._released[thread] = None

    def recycle(self, thread: int) -> None:
        """The retired *thread* was joined: :meth:`new_thread` may hand its id out again.

        So a vector clock has one entry per thread id in use at once, not one per
        thread ever started, and memory follows the live threads in the usual
        start-join-start. :meth:`new_thread` hands the id only to a thread that is
        ordered after everything the joined one did.
        """
        with self._threads_lock:
            self._free.append(thread)

    def epoch_of(self, thread: int) -> int:
        """The current tick of *thread*'s own clock entry (where its accesses start)."""
        return self._clocks[thread][thread]

    def release(self, thread: int, token: Hashable) -> bool:
        """Release side of a hand-off: what *thread* did so far happens-before acquires of *token*.

        Returns whether *thread*'s clock moved (its recent accesses must be recorded
        afresh). It does not when *thread* released *token* last and has since recorded
        no access and acquired nothing: the token already holds everything the thread
        did, and a new tick would order no access (a queue's ``put`` and the ``notify``
        inside it are two releases of the queue, back to back).
        """
        tokens = self._tokens[self.stripe_of(token)]
        released = self._released
        if released[thread] is token and token in tokens:
            return False
        clock = self._clocks[thread]
        if token in tokens:
            _join_into(tokens[token], clock)
        else:
            tokens[token] = dict(clock)
        clock[thread] += 1
        released[thread] = token
        return True

    def acquire(self, thread: int, token: Hashable) -> bool:
        """Acquire side of a hand-off: every earlier release of *token* happens-before what follows.

        Returns whether *thread*'s clock moved (it learnt of a release it did not know).
        """
        tokens = self._tokens[self.stripe_of(token)]
        if token in tokens and _join_into(self._clocks[thread], tokens[token]):
            self._released[thread] = None
            return True
        return False

    def discard_token(self, token: Hashable) -> None:
        """Forget a token nobody will acquire again (a finished future, a dead object)."""
        self._tokens[self.stripe_of(token)].pop(token, None)

    def join(self, thread: int, finished: int) -> None:
        """*thread* joined *finished*: everything *finished* did happens-before what follows."""
        if _join_into(self._clocks[thread], self._clocks[finished]):
            self._released[thread] = None

    def happens_before(self, access: Access, thread: int) -> bool:
        """Whether *access* happens-before the next thing *thread* does."""
        clock = self._clocks[thread]
        return access.clock <= (clock[access.thread] if access.thread in clock else 0)  # noqa: SIM401

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
        stripe = self.stripe_of(owner, field)
        key = (owner, field)
        shadows = self._shadow[stripe]
        clock = self._clocks[thread]
        tick = clock[thread]
        self._released[thread] = None
        if key in shadows:
            shadow = shadows[key]
            if shadow.state is not EXCLUSIVE or shadow.owner != thread:
                self._check(
                    shadow, thread, clock, read, write, locks, site, tick, location, detail, group
                )
        else:
            shadow = shadows[key] = _Shadow(thread)
            fields = self._fields[stripe]
            if owner in fields:
                fields[owner].append(field)
            else:
                fields[owner] = [field]
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
            for row in list(table):
                other = row[0]
                if other == thread:
                    continue
                seen = clock[other] if other in clock else 0  # noqa: SIM401
                entries = row[1]
                concurrent = [a for a in entries if a.clock > seen]
                if write and len(concurrent) != len(entries):
                    # A write supersedes what happens-before it. A read does not: a
                    # third thread may still race with those earlier accesses.
                    if concurrent:
                        row[1] = concurrent
                    else:
                        table.remove(row)
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
        with self._report_lock:
            if key in self._reported:
                return
            self._reported.add(key)
            self.races.append(Race(location, detail, first, second))

    def state_of(self, owner: Hashable, field: Hashable) -> str:
        """Eraser's state of a location: virgin, exclusive, shared or shared-modified."""
        shadows = self._shadow[self.stripe_of(owner, field)]
        key = (owner, field)
        return shadows[key].state if key in shadows else VIRGIN

    def forget(self, owner: Hashable) -> None:
        """Drop every location of *owner* (an object that died; its id may be reused).

        The caller holds ``lock_for(owner)``; a tuple owner's fields are spread over
        all stripes, so forgetting one needs no other thread to be recording.
        """
        stripes = range(STRIPES) if type(owner) is tuple else (self.stripe_of(owner),)
        for stripe in stripes:
            shadows = self._shadow[stripe]
            for field in self._fields[stripe].pop(owner, ()):
                shadows.pop((owner, field), None)

    def statistics(self) -> dict[str, Any]:
        """Counts for tests and benchmarks: threads started, thread ids (at most as many as
        were in use at once), clock entries, tokens, owners, locations, races."""
        return {
            "threads": self._started,
            "thread_ids": len(self._clocks) - 1,
            "clock_entries": sum(len(clock) for clock in self._clocks),
            "tokens": sum(len(tokens) for tokens in self._tokens),
            "owners": len({owner for shard in self._fields for owner in list(shard)}),
            "locations": sum(len(shadows) for shadows in self._shadow),
            "races": len(self.races),
        }


def _join_into(target: dict[int, int], source: dict[int, int]) -> bool:
    """Raise *target* to at least *source*, entry by entry; whether anything changed."""
    changed = False
    for thread, tick in source.items():
        if thread not in target or target[thread] < tick:
            target[thread] = tick
            changed = True
    return changed
