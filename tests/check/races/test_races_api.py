"""fermion.check.races(): the context manager over the caller's and included modules."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from fermion.check import races
from fermion.check._races import session as race_session
from fermion.errors import RaceSessionError

shared_total = 0
THIS_FILE = Path(__file__).read_text().splitlines()


def line_of(text: str) -> int:
    return next(n for n, line in enumerate(THIS_FILE, 1) if line.strip() == text)


def bump_shared() -> None:
    global shared_total
    shared_total += 1


def bump_locked(lock: threading.Lock) -> None:
    global shared_total
    with lock:
        shared_total += 1


signal_total = 0


def bump_signal_total() -> None:
    global signal_total
    signal_total += 1


def bump_signal_total_locked(lock: threading.Lock) -> None:
    global signal_total
    with lock:
        signal_total += 1


def run_threads(fn: Callable[[], None], n: int = 3) -> None:
    threads = [threading.Thread(target=fn) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)


def test_races_reports_a_race_in_the_callers_module() -> None:
    original = bump_shared.__code__
    with races() as report:
        run_threads(bump_shared)
    assert report.findings
    lines = {loc.line for f in report.findings for loc in f.locations}
    assert lines == {line_of("shared_total += 1")}
    assert "data race on shared_total" in report.to_text()
    assert bump_shared.__code__ is original  # restored after the block


def test_races_is_clean_when_a_lock_made_inside_protects() -> None:
    with races() as report:
        lock = threading.Lock()
        run_threads(lambda: bump_locked(lock))
    assert report.findings == []


def test_races_instruments_included_modules_imported_in_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fermion_race_included.py").write_text(
        "import threading\n\nhits = {}\n\n\ndef hit():\n    hits['n'] = hits.get('n', 0) + 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with races(include=["fermion_race_included"], caller=False) as report:
            import fermion_race_included

            run_threads(fermion_race_included.hit)
    finally:
        sys.modules.pop("fermion_race_included", None)
    assert [loc.line for f in report.findings for loc in f.locations] == [7, 7]
    assert "hits[<key>] (key 'n')" in report.findings[0].message


def test_sessions_do_not_nest() -> None:
    with races(), pytest.raises(RaceSessionError, match="already running in this process"), races():
        pass


def test_include_must_be_a_sequence_of_patterns() -> None:
    with (
        pytest.raises(TypeError, match="include must be a sequence of patterns"),
        races(include="mypkg"),
    ):
        pass


def test_start_rejects_a_non_string_script() -> None:
    with pytest.raises(TypeError, match="script_path must be a str"):
        race_session.start(123, [])  # type: ignore[arg-type]


def test_a_session_instruments_thread_start_and_join_once_through_the_registry() -> None:
    from fermion.check import _patch

    original_start, original_join = threading.Thread.start, threading.Thread.join
    with races():
        # patch_threading's instrumentation carries the start/join hand-offs; the race
        # session adds no second wrapper around them.
        assert threading.Thread.start is _patch._checked_start
        assert threading.Thread.join is _patch._checked_join
    assert (threading.Thread.start, threading.Thread.join) == (original_start, original_join)


def test_a_lock_released_by_another_thread_leaves_the_holders_lockset() -> None:
    with races() as report:
        signal = threading.Lock()  # threading's semantics: any thread may release it
        signal.acquire()
        helper = threading.Thread(target=signal.release)
        helper.start()
        helper.join(30)
        signal.acquire()  # taken and given back again: this thread holds nothing now
        signal.release()
        other = threading.Thread(target=bump_signal_total_locked, args=(signal,))
        other.start()
        bump_signal_total()  # unprotected, concurrent with `other`'s locked update
        other.join(30)
    assert any("data race on signal_total" in f.message for f in report.findings), report.to_text()
