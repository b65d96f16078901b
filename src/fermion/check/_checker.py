"""The wiring: feeds the registry's events into the pure graphs, and acts on findings.

One :class:`Checker` is active while checks are enabled. It subscribes to
:mod:`fermion.sync._registry`:

* ``on_wait_begin`` — an unbounded wait that closes a wait-for cycle raises
  :class:`DeadlockError` in that thread, before it blocks;
* ``on_nested_acquire`` — feeds the lock-order graphs (per lock, per allocation site);
  a new cycle is recorded and, by ``on_lock_order``, warned about or raised;

and runs a daemon *watchdog* thread that polls the waits every ``poll_interval``
seconds: a global stall (confirmed on two consecutive polls) is recorded and every
stalled wait is aborted with a :class:`DeadlockError`; starving waits are recorded
and warned about.

Every finding goes to the process-wide list (:func:`findings`) and to the finding
listeners (``fermion check``'s runner streams them to its parent).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fermion.check._fork import fork_hazards
from fermion.check._lockorder import LockOrderGraph, OrderEdge
from fermion.check._patch import thread_pools
from fermion.check._pools import PoolView, stuck_pools
from fermion.check._report import Finding, Location
from fermion.check._starvation import StarvationTracker
from fermion.check._waitfor import StallConfirmer, find_cycle, find_stall
from fermion.errors import DeadlockError, LockOrderError, LockOrderWarning, StarvationWarning
from fermion.sync import _registry
from fermion.sync._conditions import describe
from fermion.sync._registry import (
    Site,
    Wait,
    caller_site,
    caller_stack,
    held,
    live_holders,
    thread_name,
    user_site,
    waiting,
    withdraw_wait,
)

__all__ = ["CheckConfig", "Checker", "add_finding_listener", "clear_findings", "findings"]

_allocate_lock = threading._allocate_lock  # type: ignore[attr-defined]
_THREADING_FILE = threading.__file__
LOCK_ORDER_MODES = ("record", "warn", "raise")

# Only appended to, copied and cleared, each one atomic operation: no lock, so that a
# finding recorded by a signal handler or a finaliser that runs while this thread is
# recording another cannot hang it.
_findings: list[Finding] = []
_finding_listeners: list[Callable[[Finding], None]] = []


def findings() -> list[Finding]:
    """Every finding recorded in this process so far (a copy)."""
    return list(_findings)


def clear_findings() -> None:
    """Forget the recorded findings."""
    _findings.clear()


def add_finding_listener(listener: Callable[[Finding], None]) -> Callable[[], None]:
    """Call *listener(finding)* for each new finding; returns a function that unsubscribes."""
    _finding_listeners.append(listener)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            _finding_listeners.remove(listener)

    return remove


def record(finding: Finding) -> None:
    """Add *finding* to the list and tell the listeners."""
    _findings.append(finding)
    for listener in list(_finding_listeners):
        try:
            listener(finding)
        except Exception as exc:  # a broken listener must not break the checked program
            print(f"fermion: a finding listener failed: {exc!r}", file=sys.stderr)


@dataclass
class CheckConfig:
    """What the checker looks for, and how it reacts."""

    deadlocks: bool = True
    lock_order: bool = True
    starvation: bool = True
    on_lock_order: str = "warn"
    starvation_threshold: float = 1.0
    starvation_min_others: int = 20
    poll_interval: float = 0.25
    ignored_threads: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.on_lock_order not in LOCK_ORDER_MODES:
            raise ValueError(
                f"on_lock_order={self.on_lock_order!r} is not one of "
                f"{', '.join(map(repr, LOCK_ORDER_MODES))}"
            )
        if self.poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {self.poll_interval}")


def _where(site: Site) -> str:
    return f"{site.file}:{site.line} in {site.function}"


def _owners_text(wait: Wait) -> str:
    owners = wait.owners()
    if not owners:
        return ""
    return " (held by " + ", ".join(repr(thread_name(o)) for o in owners) + ")"


def describe_waits(
    waits: Sequence[Wait], kind: str
) -> tuple[str, tuple[dict[str, Any], ...], tuple[Location, ...]]:
    """The message, the ``cycle`` field and the locations of a deadlock or stall."""
    entries: list[dict[str, Any]] = []
    lines: list[str] = []
    wait_locations: list[Location] = []
    hold_locations: list[Location] = []
    waited_on = {id(w.primitive) for w in waits}
    for wait in waits:
        name = thread_name(wait.thread)
        holds = held(wait.thread)
        waits_for = describe(wait.primitive)
        entries.append(
            {
                "thread": name,
                "holds": tuple(
                    {
                        "lock": describe(h.primitive),
                        "file": h.site.file,
                        "line": h.site.line,
                        "function": h.site.function,
                    }
                    for h in holds
                ),
                "waits_for": waits_for,
                "file": wait.site.file,
                "line": wait.site.line,
                "function": wait.site.function,
            }
        )
        lines.append(f"  thread {name!r}")
        for h in holds:
            lines.append(f"    holds {describe(h.primitive)}, taken at {_where(h.site)}")
            if id(h.primitive) in waited_on:
                hold_locations.append(Location(h.site.file, h.site.line, h.site.function, name))
        lines.append(f"    waits for {waits_for}{_owners_text(wait)} at {_where(wait.site)}")
        wait_locations.append(Location(wait.site.file, wait.site.line, wait.site.function, name))
    if kind == "cycle":
        if len(waits) == 1:
            head = "deadlock: a thread waits for a lock it already holds itself:"
            advice = "Use an RLock if re-entry is intended, or release the lock before calling code that takes it again."
        else:
            head = f"deadlock: {len(waits)} threads wait for each other in a cycle:"
            advice = (
                "Take locks in one global order everywhere, and never join a thread while "
                "holding a lock it needs."
            )
    elif kind == "pool":
        head = (
            f"deadlock (pool capacity): all {len(waits)} worker(s) of a thread pool wait for "
            "tasks queued on the same pool, which no worker is free to run:"
        )
        advice = (
            "Do not wait inside a task for another task of the same pool: return the "
            "future (or chain it with add_done_callback), give the inner tasks their own "
            "pool, or run them inline."
        )
    else:
        head = (
            f"deadlock (global stall): all {len(waits)} running thread(s) are blocked with "
            "no timeout, and none of them can wake the others:"
        )
        advice = (
            "Make sure every wait has a thread that will satisfy it (a set(), put(), "
            "notify(), release() or enough parties), or give the wait a timeout."
        )
    message = "\n".join([head, *lines, advice])
    return message, tuple(entries), tuple(wait_locations + hold_locations)


class Checker:
    """Deadlock, stall, lock-order and starvation checks for one enabled period."""

    def __init__(self, config: CheckConfig) -> None:
        self.config = config
        self._graph_lock = _allocate_lock()
        self._order_lock = _allocate_lock()
        self._by_lock = LockOrderGraph()
        self._by_site = LockOrderGraph()
        self._starvation = StarvationTracker(
            threshold=config.starvation_threshold, min_others=config.starvation_min_others
        )
        self._confirmer = StallConfirmer()
        self._pool_confirmer = StallConfirmer()
        self._stop = _allocate_lock()
        self._watchdog: threading.Thread | None = None
        self._forks_reported: set[tuple[int, Site]] = set()
        # thread ident -> ids of the locks it held when it entered os.fork(), while it is
        # inside it (see fork_hazards)
        self._inside_fork: dict[int, frozenset[int]] = {}
        self._restart_on_wait = False
        # The threads inside a check that holds _graph_lock or _order_lock. Python code
        # can start running there in the same thread (a __del__ or weakref callback on
        # any allocation, a signal handler between any two bytecodes); when it waits or
        # nests locks itself, its own check is skipped rather than taking the lock again
        # (which would hang the thread). The watchdog still sees a stall it causes.
        self._inside: set[int] = set()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        _watch_forks(self)
        if not (self.config.deadlocks or self.config.starvation) or self._watchdog is not None:
            return
        self._stop.acquire()
        # The watchdog must not be built from patched primitives: use _thread directly.
        import _thread

        ready = _allocate_lock()
        ready.acquire()
        holder: list[int] = []

        def run() -> None:
            holder.append(threading.get_ident())
            ready.release()
            self._watch()

        _thread.start_new_thread(run, ())
        ready.acquire()
        self._watchdog_ident = holder[0]
        self._watchdog = threading.current_thread()  # marker: started

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            _fork_watchers.remove(self)
        if self._watchdog is None:
            return
        self._watchdog = None
        self._stop.release()

    # -- fork ----------------------------------------------------------------------------
    def before_fork(self) -> None:
        """Called in the forking thread just before ``os.fork()``: report the locks other
        threads hold (they stay locked in the child for good)."""
        if not self.config.deadlocks:
            return
        me = threading.get_ident()
        holders = live_holders()
        self._inside_fork[me] = frozenset(id(lock) for lock in holders.get(me, ()))
        if not fork_hazards(me, holders, self._inside_fork):
            return
        # A lock only garbage refers to (a Condition acquired, then dropped in a
        # reference cycle) can never be taken again, in the child or here: collect it and
        # ask again (without this frame's lists, which refer to the locks too). Twice: on
        # free-threaded builds the references this thread's collection drops from objects
        # another thread owns are merged into their counts at the next collection.
        del holders
        gc.collect()
        gc.collect()
        hazards = fork_hazards(me, live_holders(), self._inside_fork)
        if not hazards:
            return
        fork_site = user_site(1) or caller_site(1)
        frames = sys._current_frames()
        forker = thread_name(me)
        for holder, lock in hazards:
            key = (lock._serial, fork_site)
            if key in self._forks_reported:
                continue
            self._forks_reported.add(key)
            taken = lock._fermion_site()
            if taken.file == _THREADING_FILE:
                # threading's own short critical sections (an Event's set(), a Thread's
                # start-up): no user code runs under them, and a fork landing there is
                # noise, not a program's bug (it made CPython's test_threading flaky).
                continue
            name = thread_name(holder)
            now = _user_line_holding(taken, frames.get(holder))
            where_now = f", from {_where(now)}" if now is not None and now != taken else ""
            message = (
                f"deadlock (fork while a lock is held): thread {forker!r} forks at "
                f"{_where(fork_site)} while thread {name!r} holds {lock._describe()}, "
                f"taken at {_where(taken)}{where_now}. In the child only the forking thread "
                "exists, so that lock stays locked there for good and the first thread "
                "that takes it in the child hangs. Fork before starting threads, use "
                "multiprocessing's 'forkserver' or 'spawn' start method, or have the lock "
                "taken around the fork (os.register_at_fork)."
            )
            locations = [Location(fork_site.file, fork_site.line, fork_site.function, forker)]
            for site in dict.fromkeys(s for s in (now, taken) if s is not None):
                locations.append(Location(site.file, site.line, site.function, name))
            record(Finding("deadlock", message, tuple(locations)))

    def after_fork_in_parent(self) -> None:
        """In the parent, once the fork is done: this thread is no longer inside it."""
        self._inside_fork.pop(threading.get_ident(), None)

    def after_fork_in_child(self) -> None:
        """In the child: forget the vanished threads' waits and watch the child's."""
        self._inside_fork = {}
        self._inside = set()
        # Another thread may have held the checker's own locks at the fork.
        self._graph_lock = _allocate_lock()
        self._order_lock = _allocate_lock()
        me = threading.get_ident()
        for ident in [i for i in _registry._waiting if i != me]:
            _registry._waiting.pop(ident, None)
        self._confirmer = StallConfirmer()
        self._pool_confirmer = StallConfirmer()
        if self._watchdog is not None:
            # The watchdog did not survive the fork. A new one starts with the child's
            # first checked wait, not now: a child that never waits keeps exactly the
            # threads it forked with (code checks that, e.g. CPython's test_threading).
            self._watchdog = None
            self._stop = _allocate_lock()
            self._restart_on_wait = True

    # -- registry events ---------------------------------------------------------------
    def on_wait_begin(self, wait: Wait) -> None:
        if self._restart_on_wait:
            with self._graph_lock:
                restart, self._restart_on_wait = self._restart_on_wait, False
            if restart:
                self.start()
        if not self.config.deadlocks or wait.timeout is not None:
            return
        me = wait.thread
        inside = self._inside
        if me in inside:
            return
        inside.add(me)
        try:
            with self._graph_lock:
                cycle = find_cycle(me, waiting())
                if cycle is None:
                    return
                withdraw_wait(wait)  # this thread raises: the cycle is broken for the others
                message, entries, locations = describe_waits(cycle, "cycle")
        finally:
            inside.discard(me)
        record(Finding("deadlock", message, locations))
        raise DeadlockError(message, cycle=entries, kind="cycle")

    def on_foreign_release(
        self, primitive: Any, message: str, site: Site, holder: int, thread: int
    ) -> None:
        taken = primitive._fermion_site()
        record(
            Finding(
                "lock-release",
                message,
                (
                    Location(site.file, site.line, site.function, thread_name(thread)),
                    Location(taken.file, taken.line, taken.function, thread_name(holder)),
                ),
            )
        )

    def on_nested_acquire(self, primitive: Any, thread: int, holds: list[Any]) -> None:
        if not self.config.lock_order:
            return
        serial = primitive._serial
        for other in holds:
            if other is primitive or self._by_lock.has_edge(other._serial, serial):
                continue
            inside = self._inside
            if thread in inside:
                return
            inside.add(thread)
            try:
                self._new_order_edge(other, primitive, thread)
            finally:
                inside.discard(thread)

    def _new_order_edge(self, first: Any, second: Any, thread: int) -> None:
        name = thread_name(thread)
        stack = caller_stack(2)
        first_site, second_site = first._fermion_site(), second._fermion_site()
        edge = OrderEdge(
            first._serial, second._serial, first._describe(), second._describe(),
            first_site, second_site, name, stack,
        )  # fmt: skip
        site_edge = OrderEdge(
            first._created, second._created, first._describe(), second._describe(),
            first_site, second_site, name, stack,
        )  # fmt: skip
        with self._order_lock:
            cycle = self._by_lock.add(edge)
            site_cycle = self._by_site.add(site_edge)
        if cycle is None and site_cycle is None:
            return
        per_site = cycle is None
        chosen: list[OrderEdge] = cycle if cycle is not None else site_cycle  # type: ignore[assignment]
        message, locations = self._order_message(chosen, per_site)
        record(Finding("lock-order", message, locations))
        mode = self.config.on_lock_order
        if mode == "raise":
            raise LockOrderError(message, cycle=tuple(_edge_fields(e) for e in chosen))
        if mode == "warn":
            warnings.warn(LockOrderWarning(message), stacklevel=4)

    @staticmethod
    def _order_message(cycle: list[OrderEdge], per_site: bool) -> tuple[str, tuple[Location, ...]]:
        scope = "locks created at the same places" if per_site else "locks"
        lines = [
            f"lock-order inversion (potential deadlock): {len(cycle)} {scope} taken in "
            "orders that form a cycle; threads running these paths at the same time can deadlock:"
        ]
        locations: list[Location] = []
        for edge in cycle:
            lines.append(
                f"  thread {edge.thread!r} took {edge.first_label} at {_where(edge.first_site)}, "
                f"then {edge.second_label} at {_where(edge.second_site)}"
            )
            if edge.stack:
                lines.append("    stack: " + " <- ".join(_where(s) for s in edge.stack))
            for site in (edge.first_site, edge.second_site):
                locations.append(Location(site.file, site.line, site.function, edge.thread))
        lines.append("Take these locks in one global order everywhere.")
        return "\n".join(lines), tuple(locations)

    # -- the watchdog ------------------------------------------------------------------
    def _watch(self) -> None:
        interval = self.config.poll_interval
        while not self._stop.acquire(True, interval):
            try:
                self._poll()
            except Exception as exc:  # keep watching; say what went wrong
                print(f"fermion: the check watchdog failed: {exc!r}", file=sys.stderr)
        self._stop.release()

    def _poll(self) -> None:
        waits = waiting()
        if self.config.deadlocks and not self._check_pools(waits):
            self._check_stall(waits)
        if self.config.starvation:
            self._check_starvation(waits)

    def _check_pools(self, waits: dict[int, Wait]) -> bool:
        """Pool-capacity deadlocks (see :mod:`fermion.check._pools`); True if one was found."""
        pools = thread_pools()
        if not pools:
            return False
        awaiting: dict[int, int] = {}
        for ident, wait in waits.items():
            tag = getattr(wait.primitive, "_fermion_task_of", None)
            if tag is None or wait.timeout is not None or not wait.blocked or wait.ready():
                continue
            pool, future = tag[0](), tag[1]()
            if pool is not None and future is not None and future._state == "PENDING":
                awaiting[ident] = id(pool)
        views: list[PoolView] = []
        for pool in pools:
            try:
                threads = tuple(pool._threads)
            except RuntimeError:  # the set changed size meanwhile: look again next poll
                return False
            workers = tuple(t.ident for t in threads if t.ident is not None and t.is_alive())
            full = len(workers) >= pool._max_workers
            views.append(PoolView(id(pool), workers, full))
        stuck_keys = set(stuck_pools(views, awaiting))
        stuck_waits = [waits[w] for v in views if v.key in stuck_keys for w in v.workers]
        stuck = self._pool_confirmer.observe(stuck_waits or None)
        if not stuck:
            return bool(stuck_waits)
        message, entries, locations = describe_waits(stuck, "pool")
        record(Finding("deadlock", message, locations))
        for wait in stuck:
            wait.abort(DeadlockError(message, cycle=entries, kind="pool"))
        return True

    def _check_stall(self, waits: dict[int, Wait]) -> None:
        ignored = self.config.ignored_threads
        me = threading.get_ident()
        threads = [
            t for t in threading.enumerate()
            if t.is_alive() and t.ident is not None and t.ident != me and t.ident not in ignored
        ]  # fmt: skip
        if not any(not t.daemon for t in threads):
            self._confirmer.observe(None)
            return
        idents = [t.ident for t in threads if t.ident is not None]
        stalled = self._confirmer.observe(find_stall(idents, waits))
        if not stalled:
            return
        message, entries, locations = describe_waits(stalled, "stall")
        record(Finding("deadlock", message, locations))
        for wait in stalled:
            wait.abort(DeadlockError(message, cycle=entries, kind="stall"))

    def _check_starvation(self, waits: dict[int, Wait]) -> None:
        now = time.monotonic()
        current: set[Any] = set()
        for wait in waits.values():
            primitive = wait.primitive
            acquisitions = getattr(primitive, "_fermion_acquisitions", None)
            if acquisitions is not None:
                current.add(self._check_passed_over(wait, primitive, acquisitions, now))
            streaks = getattr(primitive, "_fermion_streaks", None)
            if streaks:
                streak = streaks.get(wait.thread)
                if streak is not None:
                    current.add(self._check_streak(wait, primitive, streak, now))
        self._starvation.retain(current)

    def _check_passed_over(self, wait: Wait, primitive: Any, acquisitions: int, now: float) -> Any:
        """A waiter for a lock-like primitive that others keep taking."""
        others = acquisitions - wait.acquisitions_at_start
        waited = now - wait.since
        # Keyed by primitive, thread and start: one finding per wait, also when the
        # wait spans several blocking calls (see Wait.since).
        key = (id(primitive), wait.thread, wait.since)
        holder = getattr(primitive, "_holder", None)
        site_of = getattr(primitive, "_fermion_site", None)
        if holder is not None and site_of is not None and holder.ident != wait.thread:
            self._starvation.served(key, site_of(), holder.ident)
        if not self._starvation.wait_starves(key, waited, others):
            return key
        advice = getattr(primitive, "_fermion_starvation_advice", None)
        name = thread_name(wait.thread)
        self._starving(
            f"starvation: thread {name!r} has waited {waited:.1f} s for "
            f"{describe(primitive)} at {_where(wait.site)} while other threads took it "
            f"{others} times{self._served_text(key)}. "
            + (
                advice()
                if advice is not None
                else "Use fermion.sync.FairLock (FIFO hand-off) or hold the lock for less time."
            ),
            wait,
            key,
        )
        return key

    def _check_streak(self, wait: Wait, primitive: Any, streak: list[Any], now: float) -> Any:
        """A thread in a predicate loop on a condition while others are served."""
        start, rewaits, served_at_start = streak[0], int(streak[1]), streak[2]
        others = int(primitive._fermion_served) - served_at_start
        waited = now - start
        key = ("streak", id(primitive), wait.thread, start)
        for site, (serial, thread) in primitive._fermion_served_at.copy().items():
            if serial > served_at_start and thread != wait.thread:
                self._starvation.served(key, Site(*site), thread)
        if not self._starvation.wait_starves(key, waited, others):
            return key
        name = thread_name(wait.thread)
        self._starving(
            f"starvation: thread {name!r} has waited {waited:.1f} s in its predicate loop on "
            f"{describe(primitive)} at {_where(wait.site)} (re-waited {rewaits - 1} times) "
            f"while other threads were served {others} times{self._served_text(key)}. Wake "
            "the waiter whose condition holds (one condition per predicate), serve waiters "
            "in order, or let a waiting writer hold new readers back.",
            wait,
            key,
        )
        return key

    def _served_text(self, key: Any) -> str:
        sites = self._starvation.served_sites(key)
        if not sites:
            return ""
        return " (at " + ", ".join(_where(site) for site, _ in sites) + ")"

    def _starving(self, message: str, wait: Wait, key: Any) -> None:
        site = wait.site
        locations = [Location(site.file, site.line, site.function, thread_name(wait.thread))]
        for served, thread in self._starvation.served_sites(key):
            locations.append(
                Location(served.file, served.line, served.function, thread_name(thread))
            )
        record(Finding("starvation", message, tuple(locations)))
        # Warnings turned into errors must not kill the watchdog.
        with contextlib.suppress(Exception):
            warnings.warn(StarvationWarning(message), stacklevel=1)


def _user_line_holding(taken: Site, frame: Any) -> Site | None:
    """The user's line that took a lock: the acquire site itself when it is user code,
    else (a lock taken inside the standard library, e.g. a logging handler's) the user
    frame that called into the library, found on the holder's current stack (the first
    user frame outside a library frame: callbacks the library made are skipped)."""
    if _is_user_file(taken.file):
        return taken
    innermost: Site | None = None  # where the holder's own code is now
    in_library = False  # a library frame outside that one: the callback's caller
    while frame is not None:
        code = frame.f_code
        if not _is_user_file(code.co_filename):
            in_library = innermost is not None
        elif innermost is None:
            innermost = Site(code.co_filename, frame.f_lineno, code.co_name)
        elif in_library:
            return Site(code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return innermost


def _is_user_file(filename: str) -> bool:
    return not _registry._is_internal(filename) and not _registry._in_standard_library(filename)


# The checkers to tell about forks; the os.register_at_fork hooks (which cannot be
# removed) are installed once, by the first checker that starts.
_fork_watchers: list[Checker] = []
_fork_hooks: list[bool] = []


def _watch_forks(checker: Checker) -> None:
    if checker not in _fork_watchers:
        _fork_watchers.append(checker)
    if not _fork_hooks and hasattr(os, "register_at_fork"):
        os.register_at_fork(
            before=_before_fork,
            after_in_parent=_after_fork_in_parent,
            after_in_child=_after_fork_in_child,
        )
        _fork_hooks.append(True)


# One fork check at a time: threads forking at once would otherwise each hold, in their
# lists of held locks, references to a lock the program dropped while holding it, and so
# make it look alive to the others (the check tells dropped locks by reference counts).
_fork_check_lock = _allocate_lock()
FORK_CHECK_WAIT_S = 10.0


def _before_fork() -> None:
    serialised = _fork_check_lock.acquire(timeout=FORK_CHECK_WAIT_S)
    try:
        for checker in list(_fork_watchers):
            try:
                checker.before_fork()
            except Exception as exc:  # a check must not break the fork
                print(f"fermion: the fork check failed: {exc!r}", file=sys.stderr)
    finally:
        if serialised:
            _fork_check_lock.release()


def _after_fork_in_parent() -> None:
    for checker in list(_fork_watchers):
        try:
            checker.after_fork_in_parent()
        except Exception as exc:
            print(f"fermion: the fork check failed after the fork: {exc!r}", file=sys.stderr)


def _after_fork_in_child() -> None:
    global _fork_check_lock
    _fork_check_lock = _allocate_lock()  # another thread may have been checking its fork
    for checker in list(_fork_watchers):
        try:
            checker.after_fork_in_child()
        except Exception as exc:
            print(
                f"fermion: restarting the checks in a forked child failed: {exc!r}", file=sys.stderr
            )


def _edge_fields(edge: OrderEdge) -> dict[str, Any]:
    return {
        "first": edge.first_label,
        "second": edge.second_label,
        "thread": edge.thread,
        "first_file": edge.first_site.file,
        "first_line": edge.first_site.line,
        "second_file": edge.second_site.file,
        "second_line": edge.second_site.line,
        "stack": tuple(str(s) for s in edge.stack),
    }
