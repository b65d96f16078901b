"""The recording runtime: memory bounds and what it ignores."""

from __future__ import annotations

import collections
import functools
import gc
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from fermion.check._races import _runtime
from fermion.check._races._rewrite import SiteInfo


@pytest.fixture
def recording() -> Iterator[None]:
    _runtime.activate()
    try:
        yield
    finally:
        _runtime.deactivate()


def site(kind: str, target: str, name: str) -> int:
    return _runtime.register_site(SiteInfo("t.py", 1, "f", "t", kind, target, name))


def test_containers_kept_alive_are_bounded(
    recording: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runtime, "_PIN_LIMIT", 20)
    write = site("write", "item", "d")
    for _ in range(100):
        _runtime._fermion_k({}, "k", write)
    assert len(_runtime._pinned) <= 20


def test_an_object_whose_attribute_was_recorded_dies_when_the_program_drops_it(
    recording: None,
) -> None:
    # Finalisers and weak references must fire as in the plain run: the hooks' caches
    # hold ids, not the objects (blinker's test_instancemethod_receiver relies on it).
    class Receiver:
        value = 0

    read, cell = site("read", "attr", "value"), site("read", "closure", "v")
    receiver, token = Receiver(), Receiver()
    assert _runtime._fermion_a(receiver, read).value == 0
    _runtime._fermion_cl(1, cell, token)
    dead = [weakref.ref(receiver), weakref.ref(token)]
    del receiver, token
    assert [ref() for ref in dead] == [None, None]


class Plain:
    pass


class Guarded:
    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)


class PartialLike(functools.partial):  # boltons' CachedInstancePartial
    pass


class Slotted:
    __slots__ = ("name",)


class WithProperty:
    @property
    def name(self) -> str:
        return self.__dict__["name"]

    @name.setter
    def name(self, value: str) -> None:
        self.__dict__["name"] = value.upper()


@pytest.mark.parametrize(
    ("cls", "stored", "races"),
    [
        (Plain, "ready", 0),  # the object the attribute holds
        (Plain, "".join(["rea", "dy"]), 0),  # an equal str
        (Plain, "renamed", 1),  # a new value: a write
        (Guarded, "ready", 1),  # its own __setattr__ may do more than store
        (PartialLike, "ready", 0),  # a C type's own generic __setattr__ only stores
        (Slotted, "ready", 1),  # no __dict__ to compare with
        (WithProperty, "ready", 1),  # the setter takes the store
    ],
)
def test_a_store_of_the_value_an_attribute_already_holds_is_no_write(
    recording: None, cls: type, stored: str, races: int
) -> None:
    # blinker's Symbol: __init__, run again on every lookup of an interned instance,
    # stores the name it already has, while other threads read it.
    symbol = cls(print) if cls is PartialLike else cls()
    if cls is WithProperty:
        symbol.__dict__["name"] = "ready"
    else:
        object.__setattr__(symbol, "name", "ready")
    write, read = site("write", "attr", "name"), site("read", "attr", "name")

    def store() -> None:
        _runtime._fermion_as(symbol, write, stored).name = stored

    def load() -> None:
        assert _runtime._fermion_a(symbol, read).name

    run_in_thread(store)
    run_in_thread(load)
    assert len(_runtime._detector.races) == races


def _pin_the_next_container(write: int) -> None:
    kept = {"k": 1}
    _runtime._fermion_k(kept, "k", write)
    assert id(kept) in _runtime._pinned  # the program still holds that one


def _collect_garbage(write: int) -> None:
    # blinker's test_instancemethod_receiver: drop the receiver, gc.collect(), check
    # that its weak reference died, with no new container pinned in between.
    gc.collect()
    assert _runtime._before_collection in gc.callbacks


@pytest.mark.parametrize(
    "release", [_pin_the_next_container, _collect_garbage], ids=["next pin", "collector"]
)
def test_a_dropped_container_lets_go_of_what_it_holds(recording: None, release: Any) -> None:
    # A dict cannot be weakly referenced, so the runtime keeps the ones it saw alive
    # (their ids must not be reused unnoticed), and with them what they hold; once the
    # program dropped one, the next container its thread pins, or the next garbage
    # collection its thread starts, releases it.
    class Held:
        pass

    write = site("write", "item", "d")
    held = Held()
    dead = weakref.ref(held)
    table = {"k": held}
    del held
    _runtime._fermion_k(table, "k", write)
    del table
    assert dead() is not None  # pinned, with what it holds
    release(write)
    assert dead() is None


def test_the_collector_hook_leaves_with_the_session() -> None:
    _runtime.activate()
    _runtime.activate()  # a second session in the same process: one hook
    assert gc.callbacks.count(_runtime._before_collection) == 1
    _runtime.deactivate()
    assert _runtime._before_collection not in gc.callbacks


def test_the_publications_of_objects_that_died_are_forgotten(recording: None) -> None:
    # Each object stored into a container after its fields were written holds a
    # hand-off clock; a loop of short-lived tasks must not pile them up.
    class Task:
        number = 0

    write, store = site("write", "attr", "number"), site("write", "item", "tasks")
    tasks: dict[int, Task] = {}
    for number in range(200):
        task = Task()
        _runtime._fermion_as(task, write, number).number = number
        _runtime._fermion_ks(tasks, number, store, task)
        tasks[number] = task
        assert id(task) in _runtime._published
        del tasks[number], task
    assert len(_runtime._published) <= 2  # the last ones, until the next access


def test_thread_local_attributes_are_never_shared(recording: None) -> None:
    local = threading.local()
    update = site("update", "attr", "count")
    start = threading.Barrier(2)

    def work() -> None:
        start.wait(timeout=10)
        local.count = 0
        for _ in range(3):
            _runtime._fermion_a(local, update).count += 1

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert _runtime._detector.races == []


def test_hooks_pass_values_through_while_inactive() -> None:
    assert not _runtime.is_active()
    read = site("read", "item", "d")
    assert _runtime._fermion_i({"a": 1}, "a", read) == 1
    assert _runtime._fermion_in("a", {"a": 1}, read) is True
    assert _runtime._fermion_get({"a": 1}, read, "b", 5) == 5


def run_in_thread(fn: object) -> None:
    thread = threading.Thread(target=fn)  # type: ignore[arg-type]
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_an_access_repeated_under_a_lock_after_a_hand_off_is_recorded_again(
    recording: None,
) -> None:
    # The lockset {lock} caches what was recorded under it; a hand-off in between must
    # empty that cache, or the second update below would be skipped and the race with
    # the other thread (ordered after the first update only) missed.
    lock, token = object(), ("token", object())
    update = site("update", "global", "shared")

    def first() -> None:
        me = threading.get_ident()
        _runtime.on_acquired(lock, me)
        _runtime._fermion_s(update)
        _runtime.on_released(lock, me)
        _runtime.handoff_release(token)
        _runtime.on_acquired(lock, me)
        _runtime._fermion_s(update)
        _runtime.on_released(lock, me)

    def second() -> None:
        _runtime.handoff_acquire(token)
        _runtime._fermion_s(update)  # no lock: ordered after the first update only

    run_in_thread(first)
    run_in_thread(second)
    assert len(_runtime._detector.races) == 1


def test_a_hand_off_that_moves_no_clock_keeps_the_threads_caches(recording: None) -> None:
    # A queue's put and the notify inside it release the queue twice in a row; the
    # second publishes nothing new, so what the thread recorded stays recorded.
    token = ("token", object())
    state = _runtime.state()
    _runtime._fermion_s(site("update", "global", "shared"))
    _runtime.handoff_release(token)
    epoch = state.epoch
    _runtime.handoff_release(token)
    assert state.epoch == epoch
    _runtime.handoff_acquire(token)  # only this thread's own release: nothing to learn
    assert state.epoch == epoch
    _runtime._fermion_s(site("update", "global", "other"))
    _runtime.handoff_release(token)  # an access came between: the clock moves
    assert state.epoch == epoch + 1


def test_an_unhashable_key_stands_for_the_whole_container(recording: None) -> None:
    class Grid:
        def __setitem__(self, key: list[int], value: int) -> None:
            pass

    grid = Grid()
    update = site("update", "item", "grid")

    def work() -> None:
        for _ in range(3):
            _runtime._fermion_k(grid, [0, 1], update)

    run_in_thread(work)
    run_in_thread(work)
    races = _runtime._detector.races
    assert [race.detail for race in races] == ["(unhashable key: the whole container)"]


def test_a_lock_entered_twice_stays_in_the_lockset_until_its_last_release(
    recording: None,
) -> None:
    outer, inner = object(), object()
    me = threading.get_ident()
    state = _runtime.state()
    _runtime.on_acquired(outer, me)
    _runtime.on_acquired(inner, me)
    _runtime.on_acquired(inner, me)
    assert state.locks == {outer, inner}
    _runtime.on_released(inner, me)
    assert state.locks == {outer, inner}
    _runtime.on_released(inner, me)
    assert state.locks == {outer}
    _runtime.on_released(outer, me)
    _runtime.on_released(outer, me)  # not held any more: ignored
    assert state.locks == frozenset() and state.lock_counts == {}


def test_the_locksets_a_thread_remembers_are_bounded(
    recording: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runtime, "_MAX_LOCKSETS", 8)
    me = threading.get_ident()
    base = object()
    _runtime.on_acquired(base, me)
    state = _runtime.state()
    for _ in range(100):  # a lock per object, each taken once
        lock = object()
        _runtime.on_acquired(lock, me)
        assert state.locks == {base, lock}
        _runtime.on_released(lock, me)
        assert state.locks == {base}
        assert len(state.nodes) <= 8
        assert len(state.node.plus) <= 8 and len(state.node.minus) <= 8
    _runtime.on_released(base, me)
    assert state.locks == frozenset()


def test_a_store_changes_a_dicts_size_only_when_the_key_is_new(recording: None) -> None:
    # Unpatched threads: no start/join edges, so every pair of threads' accesses is concurrent.
    d = {"old": 0}
    replace, insert, delete = (
        site("write", "item", "d"),
        site("write", "item", "d"),
        site("delete", "item", "d"),
    )
    update = site("update", "item", "d")
    iterate = site("iterate", "item", "d")

    def mutate() -> None:
        d[_runtime._fermion_k(d, "old", replace)] = 1
        d[_runtime._fermion_k(d, "old", update)] += 1
        d[_runtime._fermion_k(d, "new", insert)] = 2

    def remove() -> None:
        del d[_runtime._fermion_k(d, "new", delete)]

    # One thread per shape write: a thread's later write under the same locks replaces
    # its earlier one in the detector (it races with whatever the earlier one did).
    for work in (mutate, remove):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join(timeout=10)
    assert list(_runtime._fermion_it(d, iterate)) == ["old"]
    pairs = {
        frozenset((r.first.site, r.second.site))
        for r in _runtime._detector.races
        if r.detail == _runtime.SHAPE_DETAIL
    }
    assert pairs == {frozenset((insert, iterate)), frozenset((delete, iterate))}


def test_only_dicts_lists_sets_and_deques_have_a_shape(recording: None) -> None:
    iterate, resize = site("iterate", "item", "c"), site("resize", "item", "c")
    text, numbers = "abc", range(3)
    assert _runtime._fermion_it(text, iterate) is text
    assert _runtime._fermion_rs(numbers, resize) is numbers
    assert _runtime._detector.statistics()["locations"] == 0
    shaped = [[], {}, set(), collections.deque()]
    for container in shaped:
        assert _runtime._fermion_it(container, iterate) is container
    assert _runtime._detector.statistics()["locations"] == len(shaped)
