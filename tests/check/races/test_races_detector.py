"""The race analysis as a pure state machine: no threads, no instrumentation."""

from __future__ import annotations

from fermion.check._races._detector import (
    EXCLUSIVE,
    SHAPE,
    SHARED,
    SHARED_MODIFIED,
    VIRGIN,
    RaceDetector,
)

NO_LOCKS: frozenset[object] = frozenset()


def read(
    det: RaceDetector,
    tid: int,
    site: int = 1,
    locks: frozenset[object] = NO_LOCKS,
    field: str = "x",
) -> None:
    det.access(tid, "obj", field, site, read=True, write=False, locks=locks, location=field)


def write(
    det: RaceDetector,
    tid: int,
    site: int = 2,
    locks: frozenset[object] = NO_LOCKS,
    field: str = "x",
) -> None:
    det.access(tid, "obj", field, site, read=False, write=True, locks=locks, location=field)


def update(det: RaceDetector, tid: int, site: int = 3, locks: frozenset[object] = NO_LOCKS) -> None:
    det.access(tid, "obj", "x", site, read=True, write=True, locks=locks, location="x")


def two_threads() -> tuple[RaceDetector, int, int, int]:
    det = RaceDetector()
    main = det.new_thread()
    a = det.new_thread(main)
    b = det.new_thread(main)
    return det, main, a, b


def test_one_thread_alone_never_races_and_stays_exclusive() -> None:
    det, _, a, _ = two_threads()
    assert det.state_of("obj", "x") == VIRGIN
    for _ in range(5):
        update(det, a)
        read(det, a)
    assert det.races == []
    assert det.state_of("obj", "x") == EXCLUSIVE


def test_unsynchronised_read_modify_writes_race_once_per_site_pair() -> None:
    det, _, a, b = two_threads()
    for _ in range(10):
        update(det, a)
        update(det, b)
    assert len(det.races) == 1
    race = det.races[0]
    assert {race.first.thread, race.second.thread} == {a, b}
    assert det.state_of("obj", "x") == SHARED_MODIFIED


def test_write_then_concurrent_read_races() -> None:
    det, _, a, b = two_threads()
    write(det, a, site=10)
    read(det, b, site=20)
    assert [(r.first.site, r.second.site) for r in det.races] == [(10, 20)]


def test_blind_writes_alone_are_atomic_stores_not_races() -> None:
    det, _, a, b = two_threads()
    write(det, a)
    write(det, b)
    assert det.races == []


def test_concurrent_reads_only_are_shared_not_races() -> None:
    det, _, a, b = two_threads()
    read(det, a)
    read(det, b)
    assert det.races == []
    assert det.state_of("obj", "x") == SHARED


def test_a_common_lock_protects_and_different_locks_do_not() -> None:
    det, _, a, b = two_threads()
    lock, other = object(), object()
    update(det, a, locks=frozenset({lock}))
    update(det, b, locks=frozenset({lock, other}))
    assert det.races == []
    update(det, a, site=7, locks=frozenset({other}))
    update(det, b, site=8, locks=frozenset({lock}))
    assert len(det.races) == 1


def test_locked_in_one_thread_only_races() -> None:
    det, _, a, b = two_threads()
    update(det, a, locks=frozenset({"L"}))
    update(det, b, site=4)
    assert len(det.races) == 1
    assert det.races[0].first.locks == frozenset({"L"})


def test_writes_before_fork_happen_before_the_child() -> None:
    det = RaceDetector()
    main = det.new_thread()
    write(det, main)
    child = det.new_thread(main)
    read(det, child)
    assert det.races == []
    assert det.state_of("obj", "x") == EXCLUSIVE  # ownership moved to the child


def test_writes_after_fork_race_with_the_child() -> None:
    det = RaceDetector()
    main = det.new_thread()
    child = det.new_thread(main)
    write(det, main)
    read(det, child)
    assert len(det.races) == 1


def test_read_after_join_does_not_race() -> None:
    det, main, a, b = two_threads()
    write(det, a, field="ra")
    write(det, b, field="rb")
    det.join(main, a)
    det.join(main, b)
    read(det, main, field="ra")
    read(det, main, field="rb")
    assert det.races == []


def test_hand_off_orders_accesses_only_in_release_then_acquire_order() -> None:
    det, _, a, b = two_threads()
    write(det, a)
    det.release(a, "queue")
    det.acquire(b, "queue")
    update(det, b)
    assert det.races == []
    # Now b writes without handing back; a's later read races.
    read(det, a, site=5)
    assert len(det.races) == 1


def test_a_hand_off_to_one_reader_does_not_hide_a_third_threads_race() -> None:
    det = RaceDetector()
    main = det.new_thread()
    writer = det.new_thread(main)
    reader = det.new_thread(main)
    outsider = det.new_thread(main)
    write(det, writer, site=1)
    det.release(writer, "queue")
    det.acquire(reader, "queue")
    read(det, reader, site=2)
    assert det.races == []
    read(det, outsider, site=3)
    assert [(r.first.site, r.second.site) for r in det.races] == [(1, 3)]


def test_acquire_before_any_release_gives_no_order() -> None:
    det, _, a, b = two_threads()
    det.acquire(b, "event")
    write(det, a)
    det.release(a, "event")
    read(det, b)
    assert len(det.races) == 1


def test_releasing_again_with_nothing_new_does_not_move_the_clock() -> None:
    det, _, a, b = two_threads()
    queue, other = object(), object()
    write(det, a)
    assert det.release(a, queue) is True
    # A queue's put and the notify inside it: nothing happened in between.
    assert det.release(a, queue) is False
    assert det.release(a, other) is True
    assert det.release(a, queue) is True  # another token came between
    assert det.release(a, queue) is False
    write(det, a, site=4)
    assert det.release(a, queue) is True  # an access came between
    assert det.acquire(b, queue) is True
    assert det.acquire(b, queue) is False  # nothing new to learn
    assert det.release(b, queue) is True
    assert det.acquire(b, queue) is False  # only its own release: still nothing new
    assert det.release(b, queue) is False
    det.discard_token(queue)
    assert det.release(b, queue) is True  # the token was forgotten meanwhile


def test_a_skipped_release_orders_exactly_what_a_real_one_would() -> None:
    det, _, a, b = two_threads()
    queue = object()
    write(det, a, site=1)
    det.release(a, queue)
    det.release(a, queue)
    det.acquire(b, queue)
    read(det, b, site=2)
    assert det.races == []  # the write before the releases happens-before the read
    write(det, a, site=3)  # after the releases: b never learnt of it
    assert [(r.first.site, r.second.site) for r in det.races] == [(2, 3)]
    det.acquire(b, queue)
    read(det, b, site=5)
    assert len(det.races) == 2  # and a later acquire of the same releases does not order it


def test_forget_drops_a_dead_objects_history() -> None:
    det, _, a, b = two_threads()
    update(det, a)
    det.forget("obj")
    update(det, b)
    assert det.races == []


def test_statistics_counts() -> None:
    det, _, a, b = two_threads()
    update(det, a)
    update(det, b)
    stats = det.statistics()
    assert (
        stats["threads"] == 3
        and stats["thread_ids"] == 3
        and stats["locations"] == 1
        and stats["races"] == 1
    )


# -- a container's shape: iteration reads it, a change of size writes it -----------------


def iterate(
    det: RaceDetector, tid: int, site: int = 10, locks: frozenset[object] = NO_LOCKS
) -> None:
    det.access(tid, "d", SHAPE, site, read=True, write=False, locks=locks, location="size of d")


def resize(
    det: RaceDetector, tid: int, site: int = 11, locks: frozenset[object] = NO_LOCKS
) -> None:
    det.access(tid, "d", SHAPE, site, read=False, write=True, locks=locks, location="size of d")


def test_iteration_concurrent_with_a_resize_races_at_both_sites() -> None:
    det, _, a, b = two_threads()
    iterate(det, a, site=10)
    resize(det, b, site=11)
    (race,) = det.races
    assert race.location == "size of d"
    assert {race.first.site, race.second.site} == {10, 11}
    assert (race.first.write, race.second.write) == (False, True)


def test_a_resize_then_a_concurrent_iteration_races_too() -> None:
    det, _, a, b = two_threads()
    resize(det, a)
    iterate(det, b)
    assert len(det.races) == 1


def test_resizes_alone_from_several_threads_are_not_races() -> None:
    det, main, a, b = two_threads()
    c = det.new_thread(main)
    for _ in range(3):
        resize(det, a, site=11)
        resize(det, b, site=12)
    assert det.races == []
    assert det.state_of("d", SHAPE) == SHARED_MODIFIED
    iterate(det, c, site=13)
    assert {frozenset((r.first.site, r.second.site)) for r in det.races} == {
        frozenset((11, 13)),
        frozenset((12, 13)),
    }


def test_iterations_alone_from_several_threads_are_not_races() -> None:
    det, _, a, b = two_threads()
    iterate(det, a)
    iterate(det, b)
    assert det.races == []
    assert det.state_of("d", SHAPE) == SHARED


def test_iteration_and_resize_under_a_common_lock_do_not_race() -> None:
    det, _, a, b = two_threads()
    iterate(det, a, locks=frozenset({"L"}))
    resize(det, b, locks=frozenset({"L", "M"}))
    assert det.races == []
    resize(det, b, site=12, locks=frozenset({"M"}))
    assert len(det.races) == 1


def test_iteration_after_join_or_hand_off_does_not_race() -> None:
    det, main, a, b = two_threads()
    resize(det, a)
    det.join(main, a)
    iterate(det, main)
    det.release(main, "to b")
    det.acquire(b, "to b")
    resize(det, b, site=12)
    det.release(b, "to main")
    det.acquire(main, "to main")
    iterate(det, main, site=13)
    assert det.races == []


def test_the_shape_is_its_own_location_beside_the_items() -> None:
    det, _, a, b = two_threads()
    det.access(a, "d", ("item", "k"), 1, read=False, write=True, locks=NO_LOCKS, location="d")
    iterate(det, b)
    assert det.races == []
    assert det.state_of("d", ("item", "k")) == EXCLUSIVE
    det.forget("d")
    assert det.state_of("d", SHAPE) == VIRGIN


# -- retired thread ids: clocks as large as the threads in use at once ------------------


def test_a_retired_id_is_reused_and_clocks_stay_small() -> None:
    det = RaceDetector()
    main = det.new_thread()
    for _ in range(500):
        det.release(main, "start")
        child = det.new_thread(knows=det.token_clock("start"))
        det.acquire(child, "start")
        update(det, child)
        det.release(child, "exit")
        det.retire(child)
        det.acquire(main, "exit")
        det.recycle(child)
    stats = det.statistics()
    assert stats["threads"] == 501 and stats["thread_ids"] == 2
    assert stats["clock_entries"] <= 4
    assert det.races == []


def test_a_reused_id_still_races_with_a_live_thread() -> None:
    det, main, a, b = two_threads()
    update(det, a)
    det.release(a, "exit")
    det.retire(a)
    det.acquire(main, "exit")
    det.recycle(a)
    det.release(main, "start")
    c = det.new_thread(knows=det.token_clock("start"))
    assert c == a  # the retired id came back
    update(det, b)  # b races with the retired thread's access...
    assert len(det.races) == 1
    update(det, c, site=4)  # ...and the new occupant with b
    assert len(det.races) == 2


def test_a_retired_id_goes_only_to_a_thread_ordered_after_its_occupant() -> None:
    # start(a), start(c), join(a): c was started before its starter learnt of a, so
    # giving it a's id would order it after a and hide their race.
    det, main, a, _ = two_threads()
    det.release(main, "start c")
    update(det, a)
    det.release(a, "exit")
    det.retire(a)
    det.acquire(main, "exit")
    det.recycle(a)
    c = det.new_thread(knows=det.token_clock("start c"))
    assert c != a
    det.acquire(c, "start c")
    update(det, c, site=4)
    assert len(det.races) == 1
    # Started after the join, the next thread takes a's id: nothing is missed.
    det.release(main, "start d")
    d = det.new_thread(knows=det.token_clock("start d"))
    assert d == a
    det.acquire(d, "start d")
    update(det, d, site=5)
    assert len(det.races) == 2  # d races with c, not with a
