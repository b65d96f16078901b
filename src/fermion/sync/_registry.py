"""The registry of holders and waiters that checked primitives report to.

Every *checked* primitive (created while checks are on, see ``fermion.sync._config``)
tells this module what each thread holds and what it waits for. The checks in
``fermion.check`` (deadlock, global stall, lock order, starvation) and the race
detector (``fermion.check._races``) read that state and subscribe to its events.
Unchecked primitives (checks off) are the standard library's own objects and never
report anything.

State kept here, per thread:

* ``held(ident)``  — the list of :class:`Hold` records of the checked locks the thread
  holds, oldest first (a re-entered RLock appears once).
* ``waiting()``    — a snapshot ``{ident: Wait}`` of the blocking waits in progress.

A thread's holds live in its :class:`ThreadState` (``thread_state()``, kept in a
thread-local), as an immutable chain of ``(primitive, below)`` cells that only the
thread itself replaces: taking and releasing a lock is then two attribute stores, with
no per-thread dictionary lookup and no list to lock on free-threaded builds. A held
primitive's ``_holder`` is that ThreadState; an entry whose primitive has another
holder (a lenient Lock released by another thread) is stale and skipped.

Listener contract (stable; used by the race detector)
------------------------------------------------------
``add_listener(obj)`` subscribes *obj*; ``remove_listener(obj)`` unsubscribes it. The
object implements any subset of these methods; only the methods it defines are called,
so unneeded events cost nothing. All are called synchronously in the thread that
performs the operation, must be fast, and must not block on a checked primitive.
``thread`` is always ``threading.get_ident()`` of the calling thread.

``on_acquired(primitive, thread)``
    A checked lock (Lock, RLock on its first level, FairLock, Condition's underlying
    checked lock) was acquired — called *after* the acquisition. Use it to keep each
    thread's lockset. The acquire site is not computed for the listener (most do not
    need it): ``primitive._fermion_site()`` gives it, as a :class:`Site`, on demand.
``on_released(primitive, thread)``
    The same lock is about to be released — called *before* the release.
``on_handoff_release(token, thread)``
    Release side of a happens-before edge, called *before* the release takes effect:
    Lock/RLock/FairLock release, Semaphore.release, Event.set, Condition.notify /
    notify_all, Queue.put (any queue of the family), Barrier arrival, and
    ``Thread.start`` of a child (token ``("thread-start", thread_object)``) and a
    thread's exit (token ``("thread-exit", thread_object)``).
``on_handoff_acquire(token, thread)``
    Acquire side, called *after* the acquisition: Lock/RLock/FairLock acquire,
    Semaphore.acquire, Event.wait returning True, Condition wake (wait returning),
    Queue.get returning an item, Barrier release, the child thread starting to run
    (token ``("thread-start", thread_object)``) and ``Thread.join`` returning with the
    thread finished (token ``("thread-exit", thread_object)``).
    Tokens are hashable and compared by equality. For primitives the token is the
    primitive object itself, so a release on a token happens-before every later
    acquire on the same token (the vector-clock rule: join the token's clock into the
    acquirer's).
``on_wait_begin(wait)``
    A thread is about to block (``wait`` is a :class:`Wait`). May raise (the deadlock
    check raises :class:`fermion.errors.DeadlockError` here); the exception
    propagates out of the primitive's blocking call, which then has not waited.
``on_wait_end(wait, acquired)``
    The blocking call returned; ``acquired`` says whether it got what it waited for.

A listener whose hand-off methods ignore exclusive locks (the race detector: its
lockset covers them) sets the class attribute ``handoffs_from_locks = False``; a
checked Lock or RLock then calls only its ``on_acquired``/``on_released``, one call per
event instead of two on the hottest path there is. Its hand-off methods still get the
other primitives' hand-offs (FairLock's too) and must keep ignoring locks there.

Cost when nothing listens: one truthiness test of a module-level list per event.
The callbacks run during thread start-up too (``Thread.start`` hand-offs, a
``Thread._started`` event), before ``threading`` knows the thread: use the ``thread``
argument, never ``threading.current_thread()`` (it would make a dummy thread there).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "Hold",
    "Site",
    "ThreadState",
    "Wait",
    "WaitAborted",
    "add_listener",
    "blocking_wait",
    "caller_site",
    "forget_holds",
    "held",
    "remove_listener",
    "thread_name",
    "thread_state",
    "user_site",
    "user_site_of",
    "waiting",
]

get_ident = threading.get_ident
_getframe = sys._getframe

# The event lists the checked primitives test before dispatching. They are updated in
# place (one slice assignment) because the primitives' modules hold references to them.
_on_acquired: list[Callable[..., Any]] = []
_on_released: list[Callable[..., Any]] = []
_on_handoff_release: list[Callable[..., Any]] = []
_on_handoff_acquire: list[Callable[..., Any]] = []
_on_wait_begin: list[Callable[..., Any]] = []
_on_wait_end: list[Callable[..., Any]] = []
# Internal (used by the lock-order check): ``on_nested_acquire(primitive, thread, holds)``,
# called only when a thread takes a checked lock while it already holds others, after
# the acquisition and before the lock joins ``holds``. May raise; the lock is then
# released again and the error propagates.
_on_nested_acquire: list[Callable[..., Any]] = []
# Internal (the checker records a finding): ``on_foreign_release(primitive, message,
# site, holder, thread)``, called when a strict checked Lock is released by a thread
# (*thread*, at *site*) other than its holder (*holder*); *message* says so.
_on_foreign_release: list[Callable[..., Any]] = []
# What a checked Lock/RLock calls after taking its first level (resp. before giving up
# its last): every on_acquired (on_released), then the on_handoff_acquire
# (on_handoff_release) of the listeners that want hand-offs from locks. Empty when
# nobody listens: one truthiness test on the locks' fast paths.
_lock_acquired: list[Callable[..., Any]] = []
_lock_released: list[Callable[..., Any]] = []
_listeners: list[object] = []
_EVENTS = (
    "on_acquired",
    "on_released",
    "on_handoff_release",
    "on_handoff_acquire",
    "on_wait_begin",
    "on_wait_end",
    "on_nested_acquire",
    "on_foreign_release",
)
_listeners_lock = threading.Lock()


class Site(NamedTuple):
    """A place in the program: where a lock was taken or a wait began."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


UNKNOWN_SITE = Site("<unknown>", 0, "<unknown>")


class Hold:
    """One checked lock held by one thread, with where it was taken."""

    __slots__ = ("primitive", "site")

    def __init__(self, primitive: object, site: Site) -> None:
        self.primitive = primitive
        self.site = site

    def __repr__(self) -> str:
        return f"Hold({self.primitive!r} at {self.site})"


class WaitAborted(Exception):
    """Raised inside a blocking wait that a checker aborted (see :meth:`Wait.abort`)."""


class Wait:
    """One thread blocked (or about to block) on one primitive.

    ``timeout`` is ``None`` for an unbounded wait. ``ready`` is a callable that says
    whether the wait could complete now (e.g. the lock is free, the event is set); the
    stall check uses it to tell a real stall from a hand-off in flight. ``owners``
    returns the thread idents the waiter waits *for* (the owner of a lock, the joined
    thread), empty when nobody in particular can release it. ``since`` and
    ``acquisitions_at_start`` (what the starvation check compares) come from the
    primitive's ``_fermion_episodes[thread]`` when it has one for the thread (a wait
    that spans several blocking calls), else from now.
    """

    __slots__ = (
        "_abort_error",
        "acquisitions_at_start",
        "blocked",
        "owners",
        "primitive",
        "ready",
        "since",
        "site",
        "thread",
        "timeout",
    )

    def __init__(
        self,
        primitive: object,
        site: Site,
        timeout: float | None,
        ready: Callable[[], bool],
        owners: Callable[[], tuple[int, ...]],
    ) -> None:
        self.primitive = primitive
        self.site = site
        self.timeout = timeout
        self.ready = ready
        self.owners = owners
        self.thread = get_ident()
        # A primitive whose one logical wait spans several blocking calls (an RWLock
        # waiter woken and sent back by its policy) names when it began and the
        # primitive's acquisitions then, so starvation is judged on the whole wait.
        episodes = getattr(primitive, "_fermion_episodes", None)
        episode = episodes.get(self.thread) if episodes else None
        if episode is None:
            self.since = time.monotonic()
            self.acquisitions_at_start = getattr(primitive, "_fermion_acquisitions", 0)
        else:
            self.since, self.acquisitions_at_start = episode
        self._abort_error: BaseException | None = None
        # False until the wait listeners (the deadlock check) have run and the thread
        # really blocks; a stall check must not count a thread still in that step.
        self.blocked = False

    def abort(self, error: BaseException) -> None:
        """Make the blocked thread raise *error* at its next wake-up (within ~0.1 s)."""
        self._abort_error = error

    def __repr__(self) -> str:
        return f"Wait(thread={thread_name(self.thread)!r}, on={self.primitive!r}, at {self.site})"


class ThreadState:
    """One thread's part of the registry: its ident and the checked locks it holds.

    ``top`` is the newest hold: a ``(primitive, below)`` cell, ``below`` being the
    chain of older holds (``None`` at the bottom). Cells are immutable and only the
    thread itself replaces ``top``, so other threads can read the chain at any time.
    """

    __slots__ = ("__weakref__", "ident", "top")

    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.top: tuple[Any, Any] | None = None

    def holds(self, exclude: object = None) -> list[Any]:
        """The primitives this thread holds, oldest first (stale entries and *exclude* left out)."""
        return self.holds_from(self.top, exclude)

    def holds_from(self, top: tuple[Any, Any] | None, exclude: object = None) -> list[Any]:
        """:meth:`holds` read from the chain *top* (one this thread had as its ``top``)."""
        out: list[Any] = []
        seen: set[int] = set()
        node = top
        while node is not None:
            primitive = node[0]
            if primitive is not exclude and primitive._holder is self and id(primitive) not in seen:
                seen.add(id(primitive))
                out.append(primitive)
            node = node[1]
        out.reverse()
        return out

    def __repr__(self) -> str:
        return f"ThreadState({thread_name(self.ident)!r}, holds={self.holds()!r})"


_tls = threading.local()
# ident -> state, for the checks' lookups by ident; a finished thread's state goes away
# with its thread-local (unless a lock it abandoned while holding still names it).
_states: weakref.WeakValueDictionary[int, ThreadState] = weakref.WeakValueDictionary()


def thread_state() -> ThreadState:
    """The calling thread's :class:`ThreadState`, created on first use.

    The primitives' fast paths read ``_tls.state`` directly and call this only when
    it is missing.
    """
    try:
        state: ThreadState = _tls.state
        return state
    except AttributeError:
        pass
    state = ThreadState(get_ident())
    _tls.state = state
    _states[state.ident] = state
    return state


def _chain(holds: list[Any]) -> tuple[Any, Any] | None:
    top: tuple[Any, Any] | None = None
    for primitive in holds:
        top = (primitive, top)
    return top


def _extra_references(holds: list[Any], top: tuple[Any, Any] | None) -> list[int]:
    """For each of *holds*, its references beyond the chain's cells (and this check's)."""
    cells: dict[int, int] = {}
    node = top
    while node is not None:
        key = id(node[0])
        cells[key] = cells.get(key, 0) + 1
        node = node[1]
    return [getrefcount(primitive) - cells.get(id(primitive), 0) for primitive in holds]


def _calibrate() -> int:
    probe = object()
    # What _extra_references counts for an object only *holds* and one cell refer to:
    # the probe's local name here is the one reference a dropped lock does not have.
    return _extra_references([probe], (probe, None))[0] - 1


getrefcount = sys.getrefcount
_ABANDONED_REFERENCES = _calibrate()


def _not_abandoned(holds: list[Any], top: tuple[Any, Any] | None) -> list[Any]:
    """*holds* without the locks the program dropped while holding them.

    A lock garbage-collected while held (``lock.acquire(); del lock``) is kept alive by
    the thread's chain alone and can never be released; left there it would feed the
    lock-order graphs an edge to every lock the thread takes afterwards (inversions
    between unrelated tests). Only the chain referring to it is how it is recognised.
    """
    extra = _extra_references(holds, top)
    if min(extra) > _ABANDONED_REFERENCES:
        return holds
    return [p for p, n in zip(holds, extra, strict=True) if n > _ABANDONED_REFERENCES]


def push_nested(
    primitive: object, state: ThreadState, top: tuple[Any, Any]
) -> tuple[Any, Any] | None:
    """The chain to put *primitive* on, when the thread already has holds; runs the
    lock-order listeners (which may raise: the caller then gives the lock back).

    Stale entries (and an old entry of *primitive* itself) and locks the program dropped
    while holding them (see :func:`_not_abandoned`) are dropped here, so a
    chain never grows past what the thread really holds plus what a foreign release
    left since the thread last took a lock.
    """
    holds = state.holds(primitive)
    if holds:
        holds = _not_abandoned(holds, top)
    if holds and _on_nested_acquire:
        ident = state.ident
        for callback in _on_nested_acquire:
            callback(primitive, ident, holds)
    length = 0
    node: tuple[Any, Any] | None = top
    while node is not None:
        length += 1
        node = node[1]
    return top if length == len(holds) else _chain(holds)


def unlink(state: ThreadState, primitive: object) -> tuple[Any, Any] | None:
    """*state*'s chain without *primitive* (a release out of LIFO order) and stale entries."""
    return _chain(state.holds(primitive))


def push(primitive: object, state: ThreadState) -> None:
    """Record that the calling thread (*state*) now holds *primitive* (slow paths)."""
    top = state.top
    if top is not None:
        top = push_nested(primitive, state, top)
    state.top = (primitive, top)


def pop(primitive: object, state: ThreadState) -> None:
    """Record that the calling thread (*state*) no longer holds *primitive* (slow paths)."""
    top = state.top
    if top is not None and top[0] is primitive:
        state.top = top[1]
    else:
        state.top = unlink(state, primitive)


_waiting: dict[int, Wait] = {}
# How often a blocked checked wait wakes to look for an abort request.
POLL_INTERVAL = 0.1


def add_listener(listener: object) -> None:
    """Subscribe *listener* to the events it has methods for (see the module doc)."""
    with _listeners_lock:
        if any(existing is listener for existing in _listeners):
            return
        _listeners.append(listener)
        _rebuild()


def remove_listener(listener: object) -> None:
    """Unsubscribe *listener*; unknown listeners are ignored."""
    with _listeners_lock:
        for i, existing in enumerate(_listeners):
            if existing is listener:
                del _listeners[i]
                break
        _rebuild()


def _rebuild() -> None:
    module = sys.modules[__name__]
    for event in _EVENTS:
        methods = [getattr(lst, event) for lst in _listeners if callable(getattr(lst, event, None))]
        target: list[Callable[..., Any]] = getattr(module, "_" + event)
        target[:] = methods
    _lock_acquired[:] = _on_acquired + _lock_handoffs("on_handoff_acquire")
    _lock_released[:] = _on_released + _lock_handoffs("on_handoff_release")


def _lock_handoffs(event: str) -> list[Callable[..., Any]]:
    """The *event* methods of the listeners that want hand-offs from exclusive locks."""
    return [
        getattr(lst, event)
        for lst in _listeners
        if getattr(lst, "handoffs_from_locks", True) and callable(getattr(lst, event, None))
    ]


def held(ident: int | None = None) -> list[Hold]:
    """The locks thread *ident* (default: the caller) holds, oldest first (a copy)."""
    state = thread_state() if ident is None else _states.get(ident)
    if state is None:
        return []
    return [Hold(p, p._fermion_site()) for p in state.holds()]


def waiting() -> dict[int, Wait]:
    """A snapshot of the blocking waits in progress, by thread ident."""
    return dict(_waiting)


def withdraw_wait(wait: Wait) -> None:
    """Take *wait* out of the table if it is still there: when it ends, or before it
    blocks when its thread raises instead of waiting (the checks other threads make from
    then on must not count it: two threads closing one cycle at once would each report it)."""
    if _waiting.get(wait.thread) is wait:
        del _waiting[wait.thread]


def thread_name(ident: int) -> str:
    """The name of the live thread *ident*, or ``"thread-<ident>"`` if unknown."""
    thread = threading._active.get(ident)  # type: ignore[attr-defined]
    return thread.name if thread is not None else f"thread-{ident}"


def forget_holds(ident: int | None = None) -> None:
    """Forget what thread *ident* (default: the caller) holds — for tests that drop a
    lock while holding it (nobody can release it; it is no longer worth reporting)."""
    state = thread_state() if ident is None else _states.get(ident)
    if state is not None:
        state.top = None


def live_holders() -> dict[int, list[Any]]:
    """The checked locks each live thread holds now, by ident (threads holding none left out).

    Locks the program dropped while holding them are left out (see :func:`_not_abandoned`):
    nothing can take them again. A dropped lock that garbage still refers to (a
    ``Condition`` acquired and dropped, waiting in a reference cycle for the collector)
    looks alive until that garbage is collected; callers that are about to report a hold
    collect first (:func:`gc.collect`) and ask again.
    """
    out: dict[int, list[Any]] = {}
    active = threading._active  # type: ignore[attr-defined]
    for ident, state in list(_states.items()):
        if ident in active:
            top = state.top  # one chain: another thread may replace it meanwhile
            holds = state.holds_from(top)
            if holds:
                holds = _not_abandoned(holds, top)
            if holds:
                out[ident] = holds
    return out


def forget_thread(ident: int) -> None:
    """Drop the state of a finished thread (idents are reused by the OS)."""
    _states.pop(ident, None)
    _waiting.pop(ident, None)


_THIS_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_CHECK_PACKAGE = os.path.join(os.path.dirname(_THIS_PACKAGE), "check")
# threading, queue and fermion.check (its patches of Thread.join/start) are internal too.
_SKIPPED_FILES = {threading.__file__}
try:
    import queue as _queue_module

    _SKIPPED_FILES.add(_queue_module.__file__ or "")
except ImportError:  # pragma: no cover
    pass


def register_internal_file(path: str) -> None:
    """Treat frames of *path* as fermion's own when finding the user's site."""
    _SKIPPED_FILES.add(os.path.abspath(path))


def _standard_library_dirs() -> tuple[str, ...]:
    import sysconfig

    paths = sysconfig.get_paths()
    dirs = {
        os.path.abspath(paths[key]) + os.sep for key in ("stdlib", "platstdlib") if key in paths
    }
    return tuple(sorted(dirs))


# Where a thread waits or forks, reports name the user's line, not the standard
# library's (concurrent/futures/_base.py for Future.result(), multiprocessing for a
# fork): see user_site. Installed packages and CPython's own test suite are user code.
# Creation and acquisition sites keep the exact line (the lock-order graph tells locks
# apart by where they were created).
_STDLIB_DIRS = _standard_library_dirs()
_NOT_STDLIB = ("site-packages", "dist-packages")


def _in_standard_library(filename: str) -> bool:
    if not filename.startswith(_STDLIB_DIRS):
        return False
    return not any(part in filename for part in _NOT_STDLIB) and (
        os.sep + "test" + os.sep not in filename
    )


def _is_internal(filename: str) -> bool:
    return (
        filename.startswith(_THIS_PACKAGE)
        or filename.startswith(_CHECK_PACKAGE)
        or filename in _SKIPPED_FILES
    )


def caller_site(depth: int = 1) -> Site:
    """The first frame outside fermion.sync, threading and queue, from *depth* up."""
    try:
        frame = _getframe(depth + 1)
    except ValueError:
        return UNKNOWN_SITE
    while frame is not None and _is_internal(frame.f_code.co_filename):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return UNKNOWN_SITE
    return Site(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


def user_site(depth: int = 1) -> Site | None:
    """The first frame outside fermion and the whole standard library, from *depth* up;
    ``None`` when there is none (a thread running only standard-library code)."""
    try:
        frame = _getframe(depth + 1)
    except ValueError:
        return None
    return user_site_of(frame)


def user_site_of(frame: Any) -> Site | None:
    """:func:`user_site` from *frame* outwards (e.g. another thread's current frame)."""
    while frame is not None:
        code = frame.f_code
        if not _is_internal(code.co_filename) and not _in_standard_library(code.co_filename):
            return Site(code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return None


def caller_stack(depth: int = 1, limit: int = 12) -> tuple[Site, ...]:
    """The user frames from *depth* up (innermost first), at most *limit* of them."""
    try:
        frame = _getframe(depth + 1)
    except ValueError:
        return ()
    out: list[Site] = []
    while frame is not None and len(out) < limit:
        code = frame.f_code
        if not _is_internal(code.co_filename):
            out.append(Site(code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back  # type: ignore[assignment]
    return tuple(out)


def blocking_wait(
    primitive: object,
    site: Site,
    timeout: float | None,
    try_acquire: Callable[[float], bool],
    ready: Callable[[], bool],
    owners: Callable[[], tuple[int, ...]] = tuple,
) -> bool:
    """Block until ``try_acquire(seconds)`` succeeds or *timeout* passes, as a checked wait.

    Registers the wait (so stall and deadlock checks see it), lets the wait
    listeners veto it (a deadlock raises before blocking), and waits in slices of
    :data:`POLL_INTERVAL` when unbounded so that a checker can abort it. Returns
    whether *try_acquire* succeeded.
    """
    if _in_standard_library(site.file):
        # e.g. Future.result() waits in concurrent/futures/_base.py: name the caller's line
        site = user_site() or site
    wait = Wait(primitive, site, timeout, ready, owners)
    ident = wait.thread
    _waiting[ident] = wait
    acquired = False
    try:
        for callback in _on_wait_begin:
            callback(wait)
        wait.blocked = True
        if timeout is not None:
            acquired = try_acquire(timeout)
            return acquired
        while True:
            if try_acquire(POLL_INTERVAL):
                acquired = True
                return True
            error = wait._abort_error
            if error is not None:
                raise error
    finally:
        withdraw_wait(wait)
        for callback in _on_wait_end:
            callback(wait, acquired)
