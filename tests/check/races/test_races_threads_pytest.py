"""pytest --fermion-races --fermion-threads N: each test's body in N threads at once, each
race once for the suite, a baseline of known races, SARIF; and the pure ledger behind it."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fermion.check._races import _parallel
from fermion.check._report import Finding, Location

STATS = """\
hits = 0
cache = {}


def record():
    global hits
    hits += 1


def lookup(key):
    if key not in cache:
        cache[key] = key * 2
    return cache[key]


def pure(x):
    return x + 1
"""

TESTS = """\
import threading

import pytest

import stats

SEEN = set()


def test_record():
    SEEN.add(threading.current_thread().name)
    for _ in range(20):
        stats.record()


def test_record_again():
    stats.record()


def test_lookup():
    for i in range(10):
        assert stats.lookup(i) == 2 * i


def test_pure(tmp_path):
    (tmp_path / "mine").write_text(threading.current_thread().name)
    assert stats.pure(1) == 2


def test_threads_seen():
    assert len(SEEN) == THREADS, SEEN


@pytest.mark.thread_unsafe(reason="counts on being alone")
def test_alone():
    before = stats.hits
    stats.record()
    assert stats.hits == before + 1


def test_with_monkeypatch(monkeypatch):
    monkeypatch.setattr(stats, "pure", lambda x: x)
"""


def _project(tmp_path: Path, threads: int) -> Path:
    (tmp_path / "stats.py").write_text(STATS)
    (tmp_path / "test_stats.py").write_text(TESTS.replace("THREADS", str(threads)))
    return tmp_path


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "-p", "no:run-parallel", *args],
        cwd=project, capture_output=True, text=True, timeout=110, env=env, check=False,
    )  # fmt: skip


def test_each_test_runs_in_n_threads_and_each_race_is_reported_once(tmp_path: Path) -> None:
    project = _project(tmp_path, 4)
    out = tmp_path / "races.json"
    proc = run_pytest(project, "--fermion-races", "--fermion-threads", "4",
                      "--fermion-races-json", str(out), f"--basetemp={tmp_path / 'bt'}")  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    # the two racing tests fail with the report; test_record_again shows the race on
    # hits again, already reported, so it passes; test_threads_seen proves that four
    # threads ran test_record
    assert "FAILED test_stats.py::test_record -" in text
    assert "FAILED test_stats.py::test_lookup -" in text
    assert "2 failed, 5 passed" in text, text
    assert "data race on hits" in text and "stats.py:7 in record" in text
    assert "stats.py:11 in lookup" in text and "stats.py:12 in lookup" in text
    assert "5 test(s) ran in 4 threads at once, 2 in one" in text, text
    assert "test_stats.py::test_alone counts on being alone" in text
    assert "test_with_monkeypatch uses fixture(s) monkeypatch" in text
    # tmp_path: a directory of each thread's own
    written = sorted(p.parent.name for p in (tmp_path / "bt").glob("**/mine"))
    assert written == [f"thread-{i}" for i in range(4)], written
    data = json.loads(out.read_text())
    objects = sorted(race["object"] for race in data["races"])
    assert objects == ["cache[...]", "hits"], data
    assert all(not race["known"] for race in data["races"])


def test_a_baseline_accepts_known_races_and_fails_on_a_new_one(tmp_path: Path) -> None:
    project = _project(tmp_path, 3)
    baseline = tmp_path / "known.json"
    first = run_pytest(project, "--fermion-races", "--fermion-threads", "3",
                       "--fermion-races-json", str(baseline))  # fmt: skip
    assert first.returncode == 1, first.stdout
    second = run_pytest(project, "--fermion-races", "--fermion-threads", "3",
                        "--fermion-baseline", str(baseline))  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 data race(s) (0 new, 2 in the baseline)" in second.stdout
    # a new race appears: only it fails
    (project / "stats.py").write_text(
        STATS + "\n\ndef bump_cache():\n    cache['n'] = cache.get('n', 0) + 1\n"
    )
    with (project / "test_stats.py").open("a") as tests:
        tests.write("\n\ndef test_new():\n    stats.bump_cache()\n")
    sarif = tmp_path / "races.sarif"
    third = run_pytest(project, "--fermion-races", "--fermion-threads", "3",
                       "--fermion-baseline", str(baseline), "--fermion-races-sarif", str(sarif))  # fmt: skip
    assert third.returncode == 1, third.stdout
    assert "1 failed" in third.stdout and "FAILED test_stats.py::test_new" in third.stdout
    assert "3 data race(s) (1 new, 2 in the baseline)" in third.stdout
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    assert len(results) == 3


def test_a_failing_thread_fails_the_test_and_names_the_thread(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text(
        "import threading\n\n"
        "def test_only_thread_2_fails():\n"
        "    assert not threading.current_thread().name.endswith('-2'), 'thread 2 failed'\n"
    )
    proc = run_pytest(tmp_path, "--fermion-races", "--fermion-threads", "3")
    assert proc.returncode == 1, proc.stdout
    assert "thread 2 failed" in proc.stdout
    assert "in test thread 2 of 3; 1 of the 3 threads failed" in proc.stdout


UNITTEST_TESTS = """\
import threading
import unittest

import stats

SEEN = set()
CASES = set()
TORN_DOWN = []
CLEANED = []


class StatsTest(unittest.TestCase):
    def setUp(self):
        self.setups = getattr(self, "setups", 0) + 1
        self.scratch = []  # the case's own: never a race
        self.addCleanup(CLEANED.append, 1)

    def tearDown(self):
        TORN_DOWN.append(self._testMethodName)

    def test_record(self):
        SEEN.add(threading.current_thread().name)
        CASES.add(id(self))
        self.scratch.append(1)
        stats.record()
        self.assertEqual(self.setups, 1)  # each thread's case was set up once
        self.assertEqual(self.scratch, [1])

    def test_threads_seen(self):
        self.assertEqual(len(SEEN), 3, SEEN)
        self.assertEqual(len(CASES), 3, CASES)  # a test case of each thread's own
        self.assertEqual(TORN_DOWN.count("test_record"), 3)
        self.assertGreaterEqual(len(CLEANED), 3)

    @unittest.skip("not today")
    def test_skipped(self):
        raise AssertionError("a skipped test ran")

    @unittest.expectedFailure
    def test_expected_failure(self):
        self.assertEqual(1, 2)

    def test_only_thread_1_fails(self):
        self.assertFalse(threading.current_thread().name.endswith("-1"), "thread 1 failed")


class AsyncTest(unittest.IsolatedAsyncioTestCase):
    async def test_coroutine(self):
        stats.pure(1)
"""


def test_unittest_test_methods_run_in_n_threads_each_on_a_test_case_of_its_own(
    tmp_path: Path,
) -> None:
    (tmp_path / "stats.py").write_text(STATS)
    (tmp_path / "test_unit.py").write_text(UNITTEST_TESTS)
    proc = run_pytest(tmp_path, "--fermion-races", "--fermion-threads", "3", "-rA")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "FAILED test_unit.py::StatsTest::test_record - " in text  # the race on hits
    assert "data race on hits" in text and "stats.py:7 in record" in text
    assert "scratch" not in text
    assert "PASSED test_unit.py::StatsTest::test_threads_seen" in text
    assert re.search(r"SKIPPED \[1\] test_unit.py:\d+: not today", text)
    assert "XFAIL test_unit.py::StatsTest::test_expected_failure" in text
    assert "thread 1 failed" in text
    assert "in test thread 1 of 3; 1 of the 3 threads failed" in text
    assert "PASSED test_unit.py::AsyncTest::test_coroutine" in text
    assert "test_unit.py::AsyncTest::test_coroutine is a coroutine function" in text
    assert "4 test(s) ran in 3 threads at once, 1 in one" in text, text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fermion-threads", "2"], "--fermion-threads runs tests in threads for the race "
         "detector: give --fermion-races too"),
        (["--fermion-races", "--fermion-threads", "0"], "--fermion-threads must be 1 or more, not 0"),
        (["--fermion-races", "--fermion-baseline", "missing.json"],
         "cannot read the race baseline 'missing.json'"),
    ],
)  # fmt: skip
def test_bad_options_are_usage_errors_that_name_the_option(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    proc = run_pytest(tmp_path, *args)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr


def test_a_baseline_without_a_races_list_is_refused_with_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"x": 1}')
    with pytest.raises(ValueError, match=r"bad.json': it has no 'races' list"):
        _parallel.RaceLedger.from_baseline_file(str(tmp_path), str(path))


# -- the pure parts ------------------------------------------------------------------


def _race(obj: str, a: tuple[str, int, str], b: tuple[str, int, str]) -> Finding:
    return Finding(
        "race",
        f"data race on {obj}: T1 writes it at x; T2 reads it at y. Neither access ...",
        (Location(a[0], a[1], a[2], "T1"), Location(b[0], b[1], b[2], "T2")),
    )


def test_the_ledger_merges_one_race_seen_by_many_tests_and_ignores_lines() -> None:
    ledger = _parallel.RaceLedger("/proj")
    race = _race("hits", ("/proj/pkg/a.py", 6, "record"), ("/proj/pkg/a.py", 9, "read"))
    moved = _race("hits", ("/proj/pkg/a.py", 16, "record"), ("/proj/pkg/a.py", 19, "read"))
    other = _race("cache[<key>] (key 3)", ("/proj/pkg/b.py", 2, "f"), ("/proj/pkg/b.py", 3, "g"))
    assert ledger.add("t1", [race]) == [race]
    assert ledger.add("t2", [moved, other]) == [other]
    assert ledger.add("t2", [race]) == []
    assert [r.tests for r in ledger.races.values()] == [["t1", "t2"], ["t2"]]
    summary = ledger.summary()
    assert "2 data race(s) (2 new, 0 in the baseline)" in summary
    assert "pkg/b.py: cache[...]" in summary and "pkg/a.py: hits" in summary
    # the JSON is the next run's baseline
    entries = json.loads(ledger.to_json())["races"]
    again = _parallel.RaceLedger("/proj", entries)
    assert again.add("t9", [moved, other]) == []
    assert "(0 new, 2 in the baseline)" in again.summary()


def test_run_in_threads_releases_all_threads_together_and_collects_each_error() -> None:
    inside = threading.Barrier(4)  # only passes if all four are in fn at once

    def fn(value: int) -> None:
        inside.wait(10)
        if threading.current_thread().name.endswith(("-1", "-3")):
            raise ValueError(value)

    outcome = _parallel.run_in_threads(fn, {"value": 7}, 4)
    assert sorted(outcome.errors) == [1, 3]
    assert isinstance(outcome.first(), ValueError)
    assert _parallel.run_in_threads(lambda: None, {}, 3).first() is None


def test_a_thread_whose_setup_fails_releases_the_others_and_its_error_is_reported() -> None:
    # Thread 2's own arguments cannot be made (a unittest setUp that raised): the others
    # must not wait out the start barrier's minute, and the test reports thread 2's
    # error, not the broken barrier the others saw.
    def per_thread(index: int, kwargs: dict[str, object]) -> dict[str, object]:
        if index == 2:
            raise OSError("setUp of thread 2 failed")
        return kwargs

    ran = []
    outcome = _parallel.run_in_threads(lambda: ran.append(1), {}, 4, per_thread=per_thread)
    assert outcome.first_index() == 2
    assert str(outcome.first()) == "setUp of thread 2 failed"
    assert all(isinstance(outcome.errors[i], threading.BrokenBarrierError) for i in (0, 1, 3))
    assert ran == []


@pytest.mark.parametrize(
    ("fixtures", "marked", "expected"),
    [
        ((), None, None),
        (("tmp_path",), None, None),
        (("monkeypatch", "capsys"), None, "uses fixture(s) capsys, monkeypatch"),
        ((), "alone", "alone"),
    ],
)
def test_which_tests_run_in_one_thread(
    fixtures: tuple[str, ...], marked: str | None, expected: str | None
) -> None:
    reason = _parallel.single_thread_reason(lambda: None, fixtures, marked)
    assert (reason is None) == (expected is None)
    if expected is not None:
        assert reason is not None and reason.startswith(expected)


def test_a_coroutine_test_runs_in_one_thread() -> None:
    async def coroutine_test() -> None:
        pass

    assert "coroutine" in str(_parallel.single_thread_reason(coroutine_test, (), None))

    @functools.wraps(coroutine_test)
    def synchronous_wrapper() -> None:  # what pytest-asyncio's items call
        pass

    assert "coroutine" in str(_parallel.single_thread_reason(synchronous_wrapper, (), None))
