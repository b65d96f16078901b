"""The recording hooks that instrumented code calls, and the per-thread state behind them.

Hot path first: every hook checks one module flag, fetches the calling thread's state
from a ``threading.local`` and looks the access up in that thread's *seen* set — the
accesses it already recorded since its last synchronisation event (a lock taken or
released, a hand-off that moved its clock). A hit returns at once: with the same clock and the same locks,
a repeat cannot reveal a race the first one did not (FastTrack's "same epoch" rule).
Only a miss runs the analysis in :mod:`._detector`, under the one *stripe* lock of the
location it touches (``RaceDetector.lock_for``): on a free-threaded build, threads
recording different locations do not wait for each other. Hand-offs take the stripe of
their token; a thread's own clock and caches are its own and need no lock.

No ``dict.get`` here either (see :mod:`._detector`): on free-threaded CPython 3.13 it
costs about 20 microseconds whenever the entry it finds was made by another running
thread — a lock the main thread created (the key of a lockset's neighbours), the
object last recorded at a site, a watched object's weak reference — so the caches are
read with ``in`` and ``[]``.

The site number each hook receives was baked into the code by :mod:`._rewrite`; the
site table maps it to file, line, function and target, so no frame is inspected.

A dict, list, set or deque has one more location beside its items, its size
(``SHAPE``): ``_fermion_it`` (the container is iterated) reads it, ``_fermion_rs`` (a
method that may change its size) and a store of a new key or a ``del`` write it. It
goes through the same cache and the same analysis as every other location.

This module has no import-time side effects; :func:`activate` / :func:`deactivate`
(called by the session) switch recording on and off.
"""

from __future__ import annotations

import _thread
import collections
import gc
import itertools
import sys
import threading
import types
import weakref
from collections.abc import Hashable
from typing import Any

from fermion.check._races._detector import SHAPE, STRIPES, RaceDetector
from fermion.check._races._rewrite import (
    ATTR,
    CELL,
    DELETE,
    GLOBAL,
    ITEM,
    ITERATE,
    READ,
    RESIZE,
    UPDATE,
    WRITE,
    SiteInfo,
)
from fermion.sync import CheckedLock, CheckedRLock, FairLock

__all__ = [
    "SHAPE_DETAIL",
    "SITES",
    "ThreadState",
    "activate",
    "deactivate",
    "register_site",
    "state",
]

SITES: list[SiteInfo] = []
_sites_lock = _thread.allocate_lock()

_enabled = False
_detector = RaceDetector()
# Guards session switches and the foreign releases (rare events); the analysis itself
# runs under the detector's stripe locks. Raw locks, so that checked-lock tracking
# never sees them.
_lock = _thread.allocate_lock()
# Guards the choice of which pinned containers to forget (_unpin_oldest).
_pin_lock = _thread.allocate_lock()
_tls = threading.local()
_generation = 0
# Objects whose accesses are recorded by id: kept alive if they cannot be weakly
# referenced (dicts, lists), so that their id is not reused while the detector
# remembers them (at most _PIN_LIMIT of them; the oldest are forgotten first).
# _watched holds, per stripe of the detector, id -> a weak reference to the object or,
# for a pinned one, the object itself; an id's entries in it and in _pinned change only
# under that id's stripe lock (sharded so that threads do not contend on one dict's
# lock on a free-threaded build). _pinned keeps the pinning order, for _unpin_oldest.
# _dead is appended to by weakref callbacks and drained with list.pop (both atomic).
_pinned: dict[int, object] = {}
_watched: list[dict[int, Any]] = [{} for _ in range(STRIPES)]
_dead: list[int] = []
_SEEN_LIMIT = 50_000


def register_site(info: SiteInfo) -> int:
    """Number a new access site (called by the rewriter while a module compiles)."""
    with _sites_lock:
        SITES.append(info)
        return len(SITES) - 1


class _Lockset:
    """One lockset of one thread: the accesses recorded under it, and its neighbours.

    ``plus[lock]`` / ``minus[lock]`` are the locksets one lock more / less, so that a
    lock event is one dictionary lookup and builds no set. ``epoch`` is the thread's
    epoch when ``seen``/``last`` were last emptied: a hand-off moves the thread's clock
    and empties every lockset's caches, lazily, when the thread next enters it.
    """

    __slots__ = ("epoch", "last", "locks", "minus", "plus", "seen")

    def __init__(self, locks: frozenset[Hashable], epoch: int) -> None:
        self.locks = locks
        self.epoch = epoch
        self.seen: set[Hashable] = set()
        self.last: dict[int, int] = {}
        self.plus: dict[Hashable, _Lockset] = {}
        self.minus: dict[Hashable, _Lockset] = {}

    def reset(self, epoch: int) -> None:
        """Empty the caches: the thread's clock moved (it is at *epoch* now)."""
        self.epoch = epoch
        self.seen = set()
        self.last = {}


class ThreadState:
    """What the runtime keeps per thread: its detector id, locks held, recent accesses.

    ``node`` (a :class:`_Lockset`) is the set of locks the thread holds now, with its
    caches: ``node.seen``, the accesses recorded since the thread's last hand-off with
    those locks, and ``node.last``, the same for the site -> id of the object shortcut
    (an id, not the object: a cache must not keep what the program dropped alive). Lock
    changes do not move the thread's clock, so the thread keeps one cache per lockset
    and switches between them; only a hand-off (which moves the clock) empties them
    all. A lock event is thus one attribute write (``node``): on a free-threaded build,
    where attribute accesses are not specialised, the hooks' one extra read
    (``st.node.seen``) costs less than keeping copies of the node's fields up to date
    on every lock taken and released.
    ``lock_counts`` holds the levels of locks entered more than once (2 and up).
    ``inside`` and ``pending`` are the re-entry guard of :func:`_guarded`.
    """

    __slots__ = (
        "epoch", "ident", "inside", "lock_counts", "name", "node", "nodes", "pending",
        "recent_pins", "tid",
    )  # fmt: skip

    def __init__(self, tid: int, name: str, ident: int) -> None:
        self.tid = tid
        self.name = name
        self.ident = ident
        self.epoch = 0
        self.inside = _OUTSIDE
        self.pending: list[tuple[Any, tuple[Any, ...]]] = []
        root = _Lockset(_NO_LOCKS, 0)
        self.nodes: dict[frozenset[Hashable], _Lockset] = {_NO_LOCKS: root}
        self.node = root
        self.lock_counts: dict[Hashable, int] = {}
        #: Ids of the containers this thread pinned last (see _unpin_dropped).
        self.recent_pins: collections.deque[int] = collections.deque(maxlen=_YOUNG_PINS)

    @property
    def locks(self) -> frozenset[Hashable]:
        """The locks the thread holds now."""
        return self.node.locks

    def neighbour(self, node: _Lockset, lock: Hashable, taken: bool) -> _Lockset:
        """The lockset *node* with *lock* added (*taken*) or removed, linked for next time."""
        locks = node.locks | {lock} if taken else node.locks - {lock}
        nodes = self.nodes
        if locks in nodes:
            found = nodes[locks]
        else:
            if len(nodes) >= _MAX_LOCKSETS:
                node = self._forget_locksets()
                nodes = self.nodes
            found = nodes[locks] = _Lockset(locks, self.epoch)
        links = node.plus if taken else node.minus
        if len(links) >= _MAX_LOCKSETS:
            links.clear()
        links[lock] = found
        return found

    def _forget_locksets(self) -> _Lockset:
        """Too many locksets: keep only the current one (its caches included)."""
        old = self.node
        node = _Lockset(old.locks, old.epoch)
        node.seen, node.last = old.seen, old.last
        self.nodes = {node.locks: node}
        self.node = node
        return node

    def enter(self, node: _Lockset) -> None:
        """The thread now holds *node*'s locks: use that lockset's caches."""
        if node.epoch != self.epoch:
            node.reset(self.epoch)
        self.node = node

    def new_epoch(self) -> None:
        """The thread's clock moved (a hand-off): forget every recorded access."""
        self.epoch += 1
        self.enter(self.node)


_NO_LOCKS: frozenset[Hashable] = frozenset()
_MAX_LOCKSETS = 64


# -- the re-entry guard ----------------------------------------------------------------
#
# The analysis holds raw locks (a stripe, the detector's thread table, _lock) while it
# runs Python code, and Python code can start running anywhere inside it, in the same
# thread: the garbage collector calls a __del__ or a weakref callback on any
# allocation, a signal handler runs in the main thread between any two bytecodes. When
# that code is instrumented, or takes a checked lock or sets a checked Event, it comes
# back into the runtime; taking the same raw lock again would hang the program. So each
# thread's state carries a flag: code that would take a runtime lock goes through
# _guarded, which runs it at once when the thread is outside the runtime and, when it
# is inside, queues it to run, in order, when the outer call leaves. The hooks' hot path
# (a cache hit) takes no lock and does not look at the flag. User code the detector
# itself would call (a key's __eq__ or __hash__) never runs under a lock: items are
# located by keys whose comparison is the interpreter's own (_item_field).
_OUTSIDE = 0
_INSIDE = 1
# The thread ended (its id may already belong to another thread): nothing it does
# afterwards is recorded.
_RETIRED = 2


# How many times work was queued because its thread was inside (tests read it: their
# hooks really came back into the runtime).
reentries = 0


def _guarded(st: ThreadState, work: Any, *args: Any) -> None:
    """Run ``work(st, *args)``, the queued work after it, with *st* marked inside."""
    global reentries, dropped
    if st.inside:
        if st.inside == _INSIDE:
            st.pending.append((work, args))
            reentries += 1
        return
    st.inside = _INSIDE
    pending = st.pending
    try:
        work(st, *args)
        while pending:
            queued, queued_args = pending.pop(0)
            queued(st, *queued_args)
    except _Stuck:
        dropped += 1 + len(pending)
        pending.clear()
    finally:
        if st.inside == _INSIDE:
            st.inside = _OUTSIDE


class _Stuck(Exception):
    """A runtime lock stayed taken for _STUCK_AFTER seconds (see _Held)."""


# Longer than any analysis holds a lock, even on a loaded machine.
_STUCK_AFTER = 0.5
# How many accesses and hand-offs were given up on (_Held); tests and reports read it.
dropped = 0


class _Held:
    """``with _Held(lock):`` takes a runtime lock, waiting at most _STUCK_AFTER seconds.

    The guard above covers Python code that comes back into the runtime in the same
    thread. Across threads there is one more cycle: thread A, holding a stripe, runs a
    finaliser (or a signal handler) that waits for a lock of the program's that thread B
    holds, while B, inside the runtime, waits for A's stripe. Neither lets go, so B
    gives up instead: what it was recording is dropped (counted in ``dropped``; a race
    may be missed), B goes back to the program, which lets A's finaliser go on.
    """

    __slots__ = ("lock",)

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __enter__(self) -> _Held:
        if not self.lock.acquire(True, _STUCK_AFTER):
            raise _Stuck
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.lock.release()


# Per thread id, (the tick it started at, its name), one pair per thread that had it.
_names: dict[int, list[tuple[int, str]]] = {}


def _new_state() -> ThreadState:
    # threading.current_thread() would create a _DummyThread (and recurse through its
    # Event) for a thread still bootstrapping; look it up without side effects.
    ident = _thread.get_ident()
    thread = threading._active.get(ident)  # type: ignore[attr-defined]
    st = ThreadState(0, thread.name if thread is not None else f"thread-{ident}", ident)
    # Installed (and inside) before the detector's thread table is locked: a finaliser
    # run meanwhile finds this state and queues its work.
    st.inside = _INSIDE
    _tls.s = st
    try:
        st.tid = _detector.new_thread(knows=_start_clock(thread))
        if thread is not None:
            _adopt(st, thread)
    finally:
        st.inside = _OUTSIDE
    if st.pending:
        _guarded(st, _nothing)
    return st


def _start_clock(thread: threading.Thread | None) -> dict[int, int] | None:
    """What *thread* learns as it starts: the clock of its start hand-off, if published."""
    if thread is None:
        return None
    token = ("thread-start", thread)
    try:
        with _Held(_detector.lock_for(token)):
            return _detector.token_clock(token)
    except _Stuck:
        return None  # then it takes a new id, which is always right


def _nothing(st: ThreadState) -> None:
    """No work of its own: lets _guarded run what was queued."""


def _adopt(st: ThreadState, thread: threading.Thread) -> None:
    """Tie *st* to its Thread object: the name its findings show. (The start and join
    edges come through the registry: patch_threading's thread hand-offs.)"""
    st.name = thread.name
    names = _names.setdefault(st.tid, [])
    if not names or names[-1][1] != thread.name:
        names.append((_detector.epoch_of(st.tid), thread.name))


def state() -> ThreadState:
    """The calling thread's state, created on first use."""
    try:
        st: ThreadState = _tls.s
    except AttributeError:
        st = _new_state()
    return st


# -- analysis (slow path) -----------------------------------------------------------------


def _record(
    st: ThreadState,
    site: int,
    owner: Hashable,
    field: Hashable,
    label: str,
    detail: str,
    group: Hashable,
    obj: object = None,
    kind: str | None = None,
) -> None:
    """Run the analysis for one access; with *obj* (then *owner* is None), the owner is
    that object's identity. *kind* overrides the site's (a store's shape access).

    Runs under the re-entry guard (:func:`_guarded`). Only the location's stripe lock is
    held (never two stripes at once: dead objects and surplus pinned containers are
    forgotten before and after, each under its own).
    """
    if kind is None:
        kind = SITES[site].kind
    if st.inside or st.pending:
        _guarded(st, _analyse, site, owner, field, label, detail, group, obj, kind, st.node.locks)
        return
    # _guarded written out for the common case (nothing queued, not inside).
    global dropped
    st.inside = _INSIDE
    try:
        _analyse(st, site, owner, field, label, detail, group, obj, kind, st.node.locks)
    except _Stuck:
        dropped += 1
    finally:
        st.inside = _OUTSIDE
    if st.pending:
        _guarded(st, _nothing)


def _analyse(
    st: ThreadState,
    site: int,
    owner: Hashable,
    field: Hashable,
    label: str,
    detail: str,
    group: Hashable,
    obj: object,
    kind: str,
    locks: frozenset[Hashable],
) -> None:
    detector = _detector
    if _dead or _dead_tokens:
        _forget_dead(detector)
    if obj is not None:
        # The runtime's object owners are bare identities (never wrapped in a tuple):
        # the stripe of id(obj) also guards _watched/_pinned for it and forget().
        ident = id(obj)
        owner = ident
        stripe = detector.stripe_of(ident)
        lock = detector.locks[stripe]
    else:
        lock = detector.lock_for(owner, field)
    if not lock.acquire(True, _STUCK_AFTER):  # _Held, written out
        raise _Stuck
    pinned = False
    try:
        if obj is not None:
            pinned = _owner_of(detector, obj, ident, _watched[stripe])
        detector.access(
            st.tid,
            owner,
            field,
            site,
            read=kind in _READS,
            write=kind in _WRITES,
            locks=locks,
            location=label,
            detail=detail,
            group=group,
        )
    finally:
        lock.release()
    if pinned:
        _unpin_dropped(detector, st)
        st.recent_pins.append(ident)
        if len(_pinned) >= _PIN_LIMIT:
            _unpin_oldest(detector)


_READS = frozenset({READ, UPDATE, ITERATE})
_WRITES = frozenset({WRITE, UPDATE, DELETE, RESIZE})


def _forget_dead(detector: RaceDetector) -> None:
    while _dead_tokens:
        try:
            ident, key = _dead_tokens.pop()
        except IndexError:
            break
        try:
            with _Held(_lock):
                if ident in _exit_keys and _exit_keys[ident][1] is key:
                    del _exit_keys[ident]
            with _Held(detector.lock_for(key)):
                detector.discard_token(key)
        except _Stuck:
            _dead_tokens.append((ident, key))  # for a later analysis
            raise
    while _dead:
        try:
            ident = _dead.pop()
        except IndexError:  # another thread took the last one
            return
        stripe = detector.stripe_of(ident)
        try:
            _forget_one(detector, ident, stripe)
        except _Stuck:
            _dead.append(ident)  # for a later analysis
            raise


def _forget_one(detector: RaceDetector, ident: int, stripe: int) -> None:
    with _Held(detector.locks[stripe]):
        if ident in _pinned:  # a pinned object never dies: its id was not reused
            return
        watched = _watched[stripe]
        if ident in watched and _alive(watched[ident]):
            # A new object took the id after the old one died, and its first access
            # already forgot the old history (_owner_of): keep the new one's.
            return
        watched.pop(ident, None)
        detector.forget(ident)
    _forget_publication(detector, ident)


def _forget_publication(detector: RaceDetector, ident: int) -> None:
    """The object at *ident* is gone: its id may go to a new object, not its
    publications. Called holding no stripe lock (the token has a lock of its own)."""
    if ident in _published:
        _published.discard(ident)
        token = (_PUBLISHED, ident)
        with _Held(detector.lock_for(token)):
            detector.discard_token(token)


def _alive(entry: Any) -> bool:
    """Whether a ``_watched`` entry (an object, or a weak reference to one) still holds one."""
    return type(entry) is not weakref.ref or entry() is not None


def _on_death(ident: int) -> Any:
    def callback(_ref: object) -> None:
        _dead.append(ident)

    return callback


def _owner_of(detector: RaceDetector, obj: object, ident: int, watched: dict[int, Any]) -> bool:
    """Watch *obj* (at *ident*, its id), so that its id is not reused unnoticed; True
    if it was pinned just now.

    Called under the lock of *ident*'s stripe, whose part of ``_watched`` is *watched*,
    after dead objects were forgotten.
    """
    if ident in watched:
        entry = watched[ident]
        if entry is obj or (type(entry) is weakref.ref and entry() is obj):
            return False
        # A dead object's id, reused before its callback ran (a pinned object never
        # dies, so the entry is a dead weak reference).
        detector.forget(ident)
    try:
        watched[ident] = weakref.ref(obj, _on_death(ident))
    except TypeError:
        watched[ident] = obj
        _pinned[ident] = obj
        return True
    return False


_PIN_LIMIT = 200_000


#: How many of the newest pinned containers each new pin looks at (_unpin_dropped).
_YOUNG_PINS = 16
#: sys.getrefcount of a pinned container that only the runtime holds: _pinned,
#: _watched, the caller's variable and getrefcount's own argument.
_ONLY_PINNED = 4


def _unpin_dropped(detector: RaceDetector, st: ThreadState) -> None:
    """Release the containers *st*'s thread pinned last that the program has dropped
    (only the runtime still holds them), and forget their history.

    Pinning keeps a container's contents alive too, so a finaliser or a weak reference
    of what it holds (the result list of a call, holding a bound method) would fire
    only once the container is unpinned, later than in the plain run. Most containers
    die young, so each new pin looks at the few its thread pinned just before it: only
    its own, so that what their contents' finalisers do runs in the thread that most
    likely dropped them, as in the plain run, not in another one (where it would race
    with that thread's work). The containers are dropped outside every runtime lock:
    the finalisers that follow run program code. Called holding no stripe lock.
    """
    if not st.recent_pins or not _pin_lock.acquire(False):
        return  # nothing to look at, or another thread is choosing: next time
    released = []
    try:
        for ident in list(st.recent_pins):
            candidate = _pinned.get(ident)
            if candidate is None or sys.getrefcount(candidate) > _ONLY_PINNED:
                continue
            stripe = detector.stripe_of(ident)
            with _Held(detector.locks[stripe]):
                if _pinned.get(ident) is candidate and sys.getrefcount(candidate) <= _ONLY_PINNED:
                    del _pinned[ident]
                    del _watched[stripe][ident]
                    detector.forget(ident)
                    released.append(candidate)
                    st.recent_pins.remove(ident)
            del candidate
    finally:
        _pin_lock.release()
    for candidate in released:
        _forget_publication(detector, id(candidate))
    del released


def _before_collection(phase: str, _info: dict[str, int]) -> None:
    """A ``gc.callbacks`` hook: release the containers this thread dropped before the
    collector looks for garbage.

    A test that drops an object and calls ``gc.collect()`` to see it go (a weak
    reference that must die, a finaliser that must run) would otherwise find it kept
    alive by a dropped container the runtime still pins, when no new pin came between
    the drop and the check. Only the collecting thread's own pins, and only when that
    thread is outside the runtime (a collection starts at any allocation, the runtime's
    own included).
    """
    if phase != "start" or not _enabled:
        return
    st = getattr(_tls, "s", None)
    if st is None or st.inside or st.pending or not st.recent_pins:
        return
    _guarded(st, _release_dropped)


def _release_dropped(st: ThreadState) -> None:
    _unpin_dropped(_detector, st)


def _unpin_oldest(detector: RaceDetector) -> None:
    """Bound the memory kept for containers: forget the oldest tenth of them.

    Their history goes (a race involving them may be missed), never a stale history
    that a new object at a reused id would inherit. Called holding no stripe lock.
    """
    with _Held(_pin_lock):
        if len(_pinned) < _PIN_LIMIT:
            return  # another thread made room meanwhile
        oldest = list(_pinned)[: max(1, _PIN_LIMIT // 10)]
        for ident in oldest:
            stripe = detector.stripe_of(ident)
            with _Held(detector.locks[stripe]):
                if _pinned.pop(ident, None) is not None:
                    _watched[stripe].pop(ident, None)
                    detector.forget(ident)
            _forget_publication(detector, ident)


def _remember(st: ThreadState, key: Hashable) -> None:
    seen = st.node.seen
    if len(seen) >= _SEEN_LIMIT:
        seen.clear()
    seen.add(key)


def _static_access(st: ThreadState, site: int, token: object = None) -> None:
    info = SITES[site]
    if info.target == GLOBAL:
        _record(st, site, ("module", info.module), info.name, info.name, "", None)
    else:
        _record(st, site, None, info.name, info.name, "", ("cell", info.name, info.function), token)


_LOCAL_TYPES: tuple[type, ...] = (threading.local,)


def _attr_access(st: ThreadState, site: int, obj: object) -> None:
    if isinstance(obj, _LOCAL_TYPES):
        return
    info = SITES[site]
    attr = info.name
    if isinstance(obj, types.ModuleType):
        _record(st, site, ("module", obj.__name__), attr, attr, "", None)
        return
    if isinstance(obj, type):
        owner_name = obj.__name__
    elif _is_instrumented_property(type(obj), attr):
        return  # not storage: its getter and setter record the fields they touch
    else:
        owner_name = type(obj).__name__
        if id(obj) in _published:  # found in a container: after what its publisher did
            handoff_acquire((_PUBLISHED, id(obj)))
    label = f"{owner_name}.{attr}"
    _record(st, site, None, attr, label, "", label, obj)


# (class, attribute name) -> whether it is a property of instrumented code.
_properties: dict[tuple[type, str], bool] = {}


def _is_instrumented_property(cls: type, name: str) -> bool:
    """Whether ``cls.name`` is a ``property`` whose getter is instrumented code.

    Such a property is no location of its own: ``obj.status`` runs the getter, whose
    accesses to the storage it uses (``self._status``) are recorded where they are,
    with the locks the getter or setter takes. A property of code that is not
    instrumented stays a location, or its accesses would not be seen at all. Reads
    only class dictionaries: runs no code of the program.
    """
    key = (cls, name)
    try:
        return _properties[key]
    except KeyError:
        pass
    attribute = _class_attribute(cls, name)
    getter = attribute.fget if isinstance(attribute, property) else None
    found = "_fermion_a" in getattr(getter, "__globals__", ())
    if len(_properties) < 10_000:
        _properties[key] = found
    return found


def _item_access(
    st: ThreadState, site: int, container: object, key: object, hashable: bool
) -> None:
    if isinstance(container, _LOCAL_TYPES):
        return
    info = SITES[site]
    label = f"{info.name}[<key>]"
    if hashable:
        detail = "key " + _short_repr(key)
        field = _item_field(key)
    else:
        detail = "(unhashable key: the whole container)"
        field = ("item", "<unhashable>")
    kind = info.kind
    # Before the store itself (the hook returns the key it stores at): a key the dict
    # lacks is an insertion, which changes its size; a deletion always does.
    resizes = kind == DELETE or (
        kind != READ and hashable and isinstance(container, dict) and key not in container
    )
    _record(st, site, None, field, label, detail, (label, type(container).__name__), container)
    if resizes and isinstance(container, _SHAPED):
        _shape_access(st, site, container, RESIZE)


_PLAIN_KEYS: frozenset[type] = frozenset({int, str, bytes, float, bool, complex, type(None)})


def _item_field(key: Hashable) -> Hashable:
    """The detector's field for ``container[key]``, *key* being hashable.

    The key itself when comparing it runs no Python code (an int, a str... or a tuple of
    those); any other key by its type and hash. Equal keys have equal hashes, so they
    still name one location, and the detector's tables then compare only the
    interpreter's own objects: a key's ``__eq__`` or ``__hash__`` never runs while a
    stripe lock is held (where it could come back into the detector). The price: two
    unequal keys of one type with the same hash share a location.
    """
    tp = type(key)
    if tp in _PLAIN_KEYS:
        return ("item", key)
    if tp is tuple and all(type(part) in _PLAIN_KEYS for part in key):  # type: ignore[attr-defined]
        return ("item", key)
    return ("item", tp, hash(key))


# The containers whose iteration fails or skips items when another thread changes
# their size: their shape (SHAPE) is tracked.
_SHAPED: tuple[type, ...] = (dict, list, set, collections.deque)
SHAPE_DETAIL = "iterated while its size changes"


def _shape_access(st: ThreadState, site: int, container: object, kind: str | None) -> None:
    """Record an access to *container*'s shape: an iteration reads it, a resize writes it."""
    label = f"the size of {SITES[site].name}"
    group = ("shape", type(container).__name__)
    _record(st, site, None, SHAPE, label, SHAPE_DETAIL, group, container, kind)


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


# -- the hooks (hot path) -----------------------------------------------------------------


def _fermion_g(value: Any, site: int) -> Any:
    """Read of a shared global; returns *value*."""
    if _enabled:
        try:
            st = _tls.s
        except AttributeError:
            st = _new_state()
        if site not in st.node.seen:
            _remember(st, site)
            _static_access(st, site)
    return value


def _fermion_s(site: int) -> None:
    """Write or update of a shared global (a statement before the store)."""
    if _enabled:
        try:
            st = _tls.s
        except AttributeError:
            st = _new_state()
        if site not in st.node.seen:
            _remember(st, site)
            _static_access(st, site)


def _fermion_cl(value: Any, site: int, token: object) -> Any:
    """Read of a shared closure variable; *token* names the closure instance."""
    if _enabled:
        try:
            st = _tls.s
        except AttributeError:
            st = _new_state()
        try:
            hit = st.node.last[site] == id(token)
        except KeyError:
            hit = False
        if not hit:
            _object_access(st, site, token, True)
    return value


def _fermion_cs(site: int, token: object) -> None:
    """Write or update of a shared closure variable."""
    if _enabled:
        try:
            st = _tls.s
        except AttributeError:
            st = _new_state()
        try:
            hit = st.node.last[site] == id(token)
        except KeyError:
            hit = False
        if not hit:
            _object_access(st, site, token, True)


def _fermion_a(obj: Any, site: int) -> Any:
    """Access to an attribute of *obj* (kind from the site); returns *obj*."""
    if _enabled:
        try:
            st = _tls.s
        except AttributeError:
            st = _new_state()
        try:
            hit = st.node.last[site] == id(obj)
        except KeyError:
            hit = False
        if not hit:
            _object_access(st, site, obj, False)
    return obj


def _fermion_as(obj: Any, site: int, value: object) -> Any:
    """Store of *value* into an attribute of *obj*; returns *obj*. Not recorded where
    the attribute already holds *value*: such a store changes nothing, so a reader
    sees the same whether it runs before or after (``__init__`` run again on an
    interned instance, a setter called with the current value)."""
    if _enabled and _holds(obj, SITES[site].name, value):
        return obj
    return _fermion_a(obj, site)


def _holds(obj: object, name: str, value: object) -> bool:
    """Whether ``obj.name`` is stored in *obj*'s ``__dict__`` as *value* (the same
    object, or an equal str, int...) and no data descriptor of its class (a property,
    a slot) takes the store instead. Runs no code of the program: no ``__eq__`` but
    the interpreter's own, no ``__getattr__``."""
    try:
        current = object.__getattribute__(obj, "__dict__")[name]
    except Exception:  # no __dict__ (slots), not there, or a __dict__ that is no dict
        return False
    if current is not value and not (
        type(current) is type(value) and type(value) in _PLAIN_KEYS and current == value
    ):
        return False
    cls = type(obj)
    if not isinstance(cls.__setattr__, types.WrapperDescriptorType):
        return False  # a __setattr__ written in Python may do more than store
    attribute = _class_attribute(cls, name)
    return attribute is None or not hasattr(type(attribute), "__set__")


def _class_attribute(cls: type, name: str) -> object:
    """``cls.name`` as the class dictionaries along its MRO hold it (None if none does),
    not bound and with no descriptor or ``__getattr__`` run."""
    for klass in cls.__mro__:
        attribute = klass.__dict__.get(name)
        if attribute is not None:
            return attribute
    return None


def _object_access(st: ThreadState, site: int, obj: object, cell: bool) -> None:
    key = (site, id(obj))
    if key not in st.node.seen:
        _remember(st, key)
        if cell:
            _static_access(st, site, obj)
        else:
            _attr_access(st, site, obj)
    last = st.node.last
    if len(last) >= _SEEN_LIMIT:
        last.clear()
    last[site] = id(obj)


#: Objects stored into a container by instrumented code (``c[k] = obj``) after accesses
#: to them were recorded, by id; the hand-off token of each is (_PUBLISHED, id).
_published: set[int] = set()
_PUBLISHED = "published"
#: Past this many live published objects, new ones are not published (their fields
#: may then be reported as racing with the thread that found them): each holds a clock.
_PUBLISHED_LIMIT = 100_000


def _fermion_ks(container: Any, key: Any, site: int, value: object) -> Any:
    """``container[key] = value``: :func:`_fermion_k`, and the publication of *value*
    when it is an object whose accesses are recorded.

    What the storing thread did to the object before the store happens-before what a
    thread that touches the object later does: it can only have found the object in a
    container the interpreter keeps consistent (under the GIL, or the container's own
    lock on a free-threaded build), the way a task is handed from the thread that makes
    it to the one that finds it in a table. The store into the container is still an
    access of its own: a check-then-act on the container races as before."""
    if _enabled:
        ident = id(value)
        if ident in _watched[_detector.stripe_of(ident)] and (
            ident in _published or len(_published) < _PUBLISHED_LIMIT
        ):
            _published.add(ident)
            handoff_release((_PUBLISHED, ident))
    return _fermion_k(container, key, site)


def _item_hook(container: Any, key: Any, site: int) -> None:
    """Record an access to ``container[key]`` unless already seen (an unhashable key
    stands for the whole container).

    The cache holds the key's hash, not the key: looking a key up would call its
    ``__eq__`` against the keys of other accesses, which the program never compares
    (one that calls back into the cached code would recurse without end).
    """
    try:
        st = _tls.s
    except AttributeError:
        st = _new_state()
    seen = st.node.seen
    try:
        seen_key: Hashable = (site, id(container), hash(key))
        hit = seen_key in seen
        hashable = True
    except TypeError:
        seen_key = (site, id(container))
        hit = seen_key in seen
        hashable = False
    if not hit:
        _remember(st, seen_key)
        _item_access(st, site, container, key, hashable)


# _fermion_i and _fermion_k, the commonest item hooks, test for a hit themselves (no
# further call on the common path); a miss or an unhashable key goes to _item_hook.


def _fermion_i(container: Any, key: Any, site: int) -> Any:
    """Read of ``container[key]``; returns it."""
    if _enabled:
        try:
            st = _tls.s
        except AttributeError:
            st = _new_state()
        try:
            hit = (site, id(container), hash(key)) in st.node.seen
        except TypeError:
            hit = False
        if not hit:
            _item_hook(container, key, site)
    return container[key]


def _fermion_k(container: Any, key: Any, site: int) -> Any:
    """Store, delete or update of ``container[key]`` (kind from the site); returns *key*."""
    if _enabled:
        try:
            st = _tls.s
        except AttributeError:
            st = _new_state()
        try:
            hit = (site, id(container), hash(key)) in st.node.seen
        except TypeError:
            hit = False
        if not hit:
            _item_hook(container, key, site)
    return key


def _fermion_in(key: Any, container: Any, site: int) -> bool:
    """``key in container``, recorded as a read of ``container[key]`` for mappings and sets."""
    if _enabled and isinstance(container, (dict, set, frozenset)):
        _item_hook(container, key, site)
    return key in container


def _fermion_get(container: Any, site: int, *args: Any) -> Any:
    """``container.get(key[, default])``, recorded as a read for dicts."""
    if _enabled and isinstance(container, dict):
        _item_hook(container, args[0], site)
    return container.get(*args)


def _fermion_it(container: Any, site: int) -> Any:
    """*container* is about to be iterated (``_fermion_it``), or one of its methods that
    may change its size is about to be called (``_fermion_rs``); returns it. Both record
    an access to the container's size; the site says which kind (read or write)."""
    if _enabled and isinstance(container, _SHAPED):
        try:
            st = _tls.s
        except AttributeError:
            st = _new_state()
        key = (site, id(container))
        if key not in st.node.seen:
            _remember(st, key)
            _shape_access(st, site, container, None)
    return container


# The same hook under the name the rewriter gives size changes (kept apart so that the
# rewritten code reads as what it does).
_fermion_rs = _fermion_it


class _CellToken:
    """One closure instance's identity: its id names the location of its variables."""

    __slots__ = ("__weakref__",)


def _fermion_newcell() -> _CellToken:
    return _CellToken()


# -- synchronisation events -----------------------------------------------------------------


def lock_acquired(lock: Hashable) -> None:
    """The calling thread now holds *lock* (nested acquires are counted)."""
    st = state()
    node = st.node
    if lock in node.locks:
        counts = st.lock_counts
        counts[lock] = counts[lock] + 1 if lock in counts else 2
        return
    plus = node.plus
    st.enter(plus[lock] if lock in plus else st.neighbour(node, lock, True))


def lock_released(lock: Hashable) -> None:
    """The calling thread gives up one level of *lock*."""
    st = state()
    counts = st.lock_counts
    if lock in counts:
        n = counts[lock] - 1
        if n > 1:
            counts[lock] = n
        else:
            del counts[lock]
        return
    node = st.node
    if lock in node.locks:
        minus = node.minus
        st.enter(minus[lock] if lock in minus else st.neighbour(node, lock, False))


# -- the registry's events (fermion.sync._registry listener contract), inlined for speed --

_EXCLUSIVE_LOCK_TYPES: frozenset[type] = frozenset({CheckedLock, CheckedRLock, FairLock})


# Locks another thread released for their holder (a lenient Lock used as a signal):
# holder ident -> locks. Only the holder changes its own lockset, at its next lock event;
# until then its accesses still count the lock (a race may be missed, none invented).
_foreign_released: dict[int, list[Hashable]] = {}


def _released_for(holder: int, lock: Hashable) -> None:
    """Another thread released *lock* for *holder*: *holder* drops it at its next lock event."""
    _guarded(state(), _add_foreign_release, holder, lock)


def _add_foreign_release(st: ThreadState, holder: int, lock: Hashable) -> None:
    with _Held(_lock):
        _foreign_released.setdefault(holder, []).append(lock)


def _take_foreign_releases(st: ThreadState) -> None:
    with _Held(_lock):
        pending = _foreign_released.pop(st.ident, None)
    if pending:
        counts = st.lock_counts
        for lock in pending:
            counts.pop(lock, None)
            lock_released(lock)


# on_acquired and on_released run on every checked lock operation of the program: they
# are lock_acquired and lock_released written out (no further call on the common path).


def on_acquired(primitive: Hashable, thread: int) -> None:
    """Registry event: a checked lock was acquired by the calling thread."""
    if _enabled:
        try:
            st: ThreadState = _tls.s
        except AttributeError:
            st = _new_state()
        if _foreign_released:
            _guarded(st, _take_foreign_releases)
        node = st.node
        try:
            new = node.plus[primitive]
        except KeyError:
            if primitive in node.locks:
                counts = st.lock_counts
                counts[primitive] = counts[primitive] + 1 if primitive in counts else 2
                return
            new = st.neighbour(node, primitive, True)
        # The lock is held: in the new lockset before its caches are made (a finaliser
        # the allocation runs is then seen holding it).
        st.node = new
        if new.epoch != st.epoch:
            new.reset(st.epoch)


def on_released(primitive: Hashable, thread: int) -> None:
    """Registry event: thread *thread* gives up a checked lock (the caller, or for a
    lenient Lock released by another thread, the holder)."""
    if _enabled:
        try:
            st: ThreadState = _tls.s
        except AttributeError:
            if thread != _thread.get_ident():
                _released_for(thread, primitive)
                return
            st = _new_state()
        if thread != st.ident:
            _released_for(thread, primitive)
            return
        if _foreign_released:
            _guarded(st, _take_foreign_releases)
        counts = st.lock_counts
        if counts and primitive in counts:
            n = counts[primitive] - 1
            if n > 1:
                counts[primitive] = n
            else:
                del counts[primitive]
            return
        node = st.node
        try:
            new = node.minus[primitive]
        except KeyError:
            if primitive not in node.locks:
                return
            new = st.neighbour(node, primitive, False)
        if new.epoch != st.epoch:
            new.reset(st.epoch)
        st.node = new


def on_handoff_release(token: Hashable, thread: int) -> None:
    """Registry event: release side of a hand-off; exclusive locks are the lockset's job."""
    if _enabled and type(token) not in _EXCLUSIVE_LOCK_TYPES:
        handoff_release(token)


def on_handoff_acquire(token: Hashable, thread: int) -> None:
    """Registry event: acquire side of a hand-off."""
    if _enabled and type(token) not in _EXCLUSIVE_LOCK_TYPES:
        handoff_acquire(token)


def handoff_release(token: Hashable) -> None:
    """What the calling thread did so far happens-before later acquires of *token*."""
    st = state()
    if st.inside or st.pending or type(token) is tuple:
        _guarded(st, _release, token)
        return
    # _guarded(st, _release, token) written out for a primitive's token (every queue
    # put and get, every event): no queued work, not a thread's start or exit.
    global dropped
    lock = _detector.lock_for(token)
    st.inside = _INSIDE
    try:
        if not lock.acquire(True, _STUCK_AFTER):
            dropped += 1
            return
        try:
            moved = _detector.release(st.tid, token)
        finally:
            lock.release()
        if moved:  # not when it published nothing new (RaceDetector.release)
            st.new_epoch()
    finally:
        st.inside = _OUTSIDE
    if st.pending:
        _guarded(st, _nothing)


def handoff_acquire(token: Hashable) -> None:
    """Every earlier release of *token* happens-before what the calling thread does next."""
    st = state()
    if st.inside or st.pending or type(token) is tuple:
        _guarded(st, _acquire, token)
        return
    global dropped  # as handoff_release
    lock = _detector.lock_for(token)
    st.inside = _INSIDE
    try:
        if not lock.acquire(True, _STUCK_AFTER):
            dropped += 1
            return
        try:
            moved = _detector.acquire(st.tid, token)
        finally:
            lock.release()
        if moved:  # not when the thread already knew everything the token holds
            st.new_epoch()
    finally:
        st.inside = _OUTSIDE
    if st.pending:
        _guarded(st, _nothing)


def discard_token(token: Hashable) -> None:
    """Forget a hand-off token that will not be acquired again."""
    _guarded(state(), _discard, token)


def _release(st: ThreadState, token: Hashable) -> None:
    detector = _detector
    thread = token[1] if _is_thread_token(token, "thread-exit") else None  # type: ignore[index]
    if thread is not None:
        token = _exit_key(thread)
    with _Held(detector.lock_for(token)):
        moved = detector.release(st.tid, token)
    if moved:  # not when it published nothing new (RaceDetector.release)
        st.new_epoch()
    if thread is not None:
        # Its last event: everything it did is in its exit token now. Whatever it runs
        # from here on is not recorded; its id goes back once it is joined (_acquire).
        st.inside = _RETIRED
        st.pending.clear()
        detector.retire(st.tid)
        with _Held(_lock):
            _exit_keys[id(thread)][2] = st.tid
        if _dead_tokens:
            _forget_dead(detector)


def _acquire(st: ThreadState, token: Hashable) -> None:
    starting = _is_thread_token(token, "thread-start")
    if starting:
        _adopt(st, token[1])  # type: ignore[index]
    elif _is_thread_token(token, "thread-exit"):
        entry = _exit_entry(token[1])  # type: ignore[index]
        if entry is None:
            return  # it has not published its exit (yet): nothing to learn
        token = entry[1]
    detector = _detector
    with _Held(detector.lock_for(token)):
        moved = detector.acquire(st.tid, token)
        if starting:  # only the thread itself acquires its start
            detector.discard_token(token)
    if moved:  # not when the thread already knew everything the token holds
        st.new_epoch()
    if not starting and type(token) is tuple and token[0] == "thread-exit":
        with _Held(_lock):  # the first join hands the joined thread's id back, once
            retired, entry[2] = entry[2], None  # type: ignore[index]
        if retired is not None:
            detector.recycle(retired)


def _discard(st: ThreadState, token: Hashable) -> None:
    detector = _detector
    with _Held(detector.lock_for(token)):
        detector.discard_token(token)


def _is_thread_token(token: Hashable, kind: str) -> bool:
    return type(token) is tuple and len(token) == 2 and token[0] == kind


# A thread's exit hand-off is kept under a key of its own rather than under the token
# (which holds the Thread object): id(thread) -> [a weak reference to the thread, the
# key, its retired detector id until the first join hands it back], changed under
# _lock. When the Thread object dies, its id and key go to _dead_tokens (the weak
# reference's callback, which only appends) and the next analysis or thread exit
# discards them (_forget_dead).
_exit_keys: dict[int, list[Any]] = {}
_dead_tokens: list[tuple[int, Hashable]] = []
_exit_serials = itertools.count()


def _exit_key(thread: threading.Thread) -> Hashable:
    """The detector's token for *thread*'s exit, made on its first use (called guarded)."""
    entry = _exit_entry(thread)
    if entry is not None:
        return entry[1]
    ident = id(thread)
    with _Held(_lock):
        key = ("thread-exit", next(_exit_serials))

        def died(_ref: object) -> None:
            _dead_tokens.append((ident, key))

        _exit_keys[ident] = [weakref.ref(thread, died), key, None]
    return key


def _exit_entry(thread: threading.Thread) -> list[Any] | None:
    """*thread*'s entry in _exit_keys, if it published its exit."""
    ident = id(thread)
    if ident in _exit_keys:
        entry = _exit_keys[ident]
        if entry[0]() is thread:
            return entry
    return None


# -- session control ------------------------------------------------------------------------


def activate() -> None:
    """Start recording with a fresh detector; every thread gets new state on its next access."""
    global _enabled, _detector, _tls, _generation
    with _lock:
        _detector = RaceDetector()
        _tls = threading.local()
        _generation += 1
        _pinned.clear()
        for watched in _watched:
            watched.clear()
        _dead.clear()
        _names.clear()
        _foreign_released.clear()
        _exit_keys.clear()
        _dead_tokens.clear()
        _published.clear()
        _properties.clear()
        if _before_collection not in gc.callbacks:
            gc.callbacks.append(_before_collection)
    _enabled = True


def deactivate() -> RaceDetector:
    """Stop recording; returns the detector with what it found."""
    global _enabled
    _enabled = False
    with _lock:
        if _before_collection in gc.callbacks:
            gc.callbacks.remove(_before_collection)
        detector = _detector
        # Wait for analyses in flight (each holds one stripe) before the caller reads
        # the findings.
        stripes = detector.locks
        for stripe in stripes:
            stripe.acquire()
        try:
            _pinned.clear()
            for watched in _watched:
                watched.clear()
            _dead.clear()
            _published.clear()
        finally:
            for stripe in reversed(stripes):
                stripe.release()
    return detector


def is_active() -> bool:
    """Whether the hooks record now."""
    return _enabled


def thread_name(tid: int, tick: int = 0) -> str:
    """The name of the thread that had detector id *tid* at clock tick *tick* (an id
    is handed out again once its thread ended: RaceDetector.retire)."""
    name = f"thread-{tid}"
    for start, candidate in _names.get(tid, ()):  # not the hot path
        if start > tick:
            break
        name = candidate
    return name


__all__ += [
    "discard_token",
    "handoff_acquire",
    "handoff_release",
    "is_active",
    "lock_acquired",
    "lock_released",
    "thread_name",
]
# Silence "imported but unused" for names the rewriter's site kinds document.
_KINDS = (ATTR, CELL, ITEM)
