"""``pytest --fermion-races --fermion-threads N``: each test in N threads at once, each race
reported once for the whole suite, known races accepted from a baseline.

Two parts, kept apart from pytest's hooks (``_pytest.py`` wires them):

* :func:`run_in_threads` calls a test function in N threads released together by a
  barrier, so that the detector sees the test's code run against itself;
* :class:`RaceLedger` (pure: no threads, no pytest) collects the races of every test,
  merges the same race seen by many tests, tells new races from the baseline's, and
  writes the summary (text, JSON that serves as the next baseline, SARIF).

A race is the same race when it is on the same object between the same two functions of
the same files (lines are not part of it, so a baseline survives edits elsewhere in the
file).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fermion.check._report import Finding, Report

__all__ = [
    "THREAD_UNSAFE_FIXTURES",
    "RaceLedger",
    "SeenRace",
    "TestCaseThreads",
    "ThreadsOutcome",
    "own_tmp_path",
    "race_key",
    "race_object",
    "run_in_threads",
    "single_thread_reason",
]

#: Fixtures whose object cannot be shared by threads running one test at once: they
#: patch or capture process-wide state (pytest-run-parallel runs these tests in one
#: thread too).
THREAD_UNSAFE_FIXTURES = frozenset(
    {"capsys", "capsysbinary", "capteesys", "capfd", "capfdbinary", "monkeypatch", "recwarn"}
)

#: How long the test's threads wait for each other at the start barrier.
START_TIMEOUT_S = 60.0


def single_thread_reason(fn: Any, fixtures: Iterable[str], marked_unsafe: str | None) -> str | None:
    """Why a test must run in one thread (None: it may run in several)."""
    if marked_unsafe is not None:
        return marked_unsafe
    try:
        original = inspect.unwrap(fn)  # pytest-asyncio hands over a synchronous wrapper
    except ValueError:  # a cycle of __wrapped__
        original = fn
    if any(inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f) for f in (fn, original)):
        return "is a coroutine function (its event loop runs it once)"
    unsafe = sorted(THREAD_UNSAFE_FIXTURES.intersection(fixtures))
    if unsafe:
        return f"uses fixture(s) {', '.join(unsafe)}, which patch or capture the whole process"
    return None


@dataclass
class ThreadsOutcome:
    """What the threads of one test raised, by thread index (empty: every thread passed)."""

    errors: dict[int, BaseException] = field(default_factory=dict)

    def first_index(self) -> int | None:
        """The thread whose error the test reports: the first that did not only see
        another thread break the start barrier."""
        own = [
            i for i, exc in self.errors.items() if not isinstance(exc, threading.BrokenBarrierError)
        ]
        return min(own or self.errors) if self.errors else None

    def first(self) -> BaseException | None:
        index = self.first_index()
        return None if index is None else self.errors[index]


def run_in_threads(
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    threads: int,
    *,
    per_thread: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
    start_timeout: float = START_TIMEOUT_S,
) -> ThreadsOutcome:
    """Call ``fn(**kwargs)`` in *threads* threads released together; what each raised.

    *per_thread* gives thread *i* its own arguments (a ``tmp_path`` of its own); the
    other fixture values are the same objects in every thread. A thread that never
    reaches the barrier (the others time out) is reported as a ``BrokenBarrierError``.
    """
    barrier = threading.Barrier(threads)
    outcome = ThreadsOutcome()

    def body(index: int) -> None:
        try:
            arguments = per_thread(index, kwargs) if per_thread is not None else kwargs
        except BaseException as exc:  # the others need not wait for this one
            outcome.errors[index] = exc
            barrier.abort()
            return
        try:
            barrier.wait(start_timeout)
            fn(**arguments)
        except BaseException as exc:  # reported to the test, in the calling thread
            outcome.errors[index] = exc

    workers = [
        threading.Thread(target=body, args=(i,), name=f"fermion-test-thread-{i}", daemon=True)
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcome


def own_tmp_path(index: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """*kwargs* with ``tmp_path``/``tmpdir`` replaced by a directory of thread *index*'s own."""
    if "tmp_path" not in kwargs and "tmpdir" not in kwargs:
        return kwargs
    out = dict(kwargs)
    if "tmp_path" in out:
        path = Path(out["tmp_path"]) / f"thread-{index}"
        path.mkdir(exist_ok=True)
        out["tmp_path"] = path
    if "tmpdir" in out:
        out["tmpdir"] = out["tmpdir"].ensure(f"thread-{index}", dir=True)
    return out


class TestCaseThreads:
    """A ``unittest.TestCase`` test method run by the test threads, each on a test case
    of its own.

    The test case is the test's fixture: its ``setUp`` builds what the method works on.
    Sharing one case between the threads would report races on that scratch state (a
    file object the test opened), which the code under test never shares; each thread
    gets a fresh case of the same class and method instead, set up before the start
    barrier and torn down after, so that the races left are on what the cases share:
    module and class state, the library's own. Thread 0 runs the method on the case
    unittest set up (and tears down) itself.
    """

    def __init__(self, case: Any, method: Callable[[], Any]) -> None:
        self.case = case
        self.method = method

    def per_thread(self, index: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        if index == 0:
            return {"case": self.case}
        case = type(self.case)(self.case._testMethodName)
        try:
            case.setUp()
        except BaseException:
            case.doCleanups()
            raise
        return {"case": case}

    def __call__(self, case: Any) -> None:
        if case is self.case:
            self.method()
            return
        try:
            getattr(case, case._testMethodName)()
        finally:
            try:
                case.tearDown()
            finally:
                case.doCleanups()


# -- the ledger -----------------------------------------------------------------------

_OBJECT = re.compile(r"^data race on (?P<object>.+?)(?: \([^)]*\))?: ")
_SUBSCRIPT = re.compile(r"\[.*\]$")


def race_object(finding: Finding) -> str:
    """The object a race finding is about (``counter``, ``Stats.hits``, ``cache[...]``)."""
    match = _OBJECT.match(finding.message)
    name = match.group("object") if match else finding.message.split(":", 1)[0]
    return _SUBSCRIPT.sub("[...]", name)


def _relative(path: str, root: str) -> str:
    try:
        rel = os.path.relpath(path, root)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith("..") else rel.replace(os.sep, "/")


def race_key(finding: Finding, root: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """What makes two findings the same race: kind, object, and the two accesses' files
    and functions (not their lines)."""
    sites = tuple(sorted((_relative(loc.file, root), loc.function) for loc in finding.locations))
    return finding.kind, race_object(finding), sites


@dataclass
class SeenRace:
    """One race of the suite: the first finding of it, and every test that showed it."""

    finding: Finding
    tests: list[str]
    known: bool  # in the baseline


class RaceLedger:
    """Every race of a test session, once each, with the tests that showed it."""

    def __init__(self, root: str, baseline: Sequence[dict[str, Any]] = ()) -> None:
        self.root = root
        self.races: dict[tuple[Any, ...], SeenRace] = {}
        self._baseline = {self._key_of_entry(entry) for entry in baseline}

    @classmethod
    def from_baseline_file(cls, root: str, path: str | None) -> RaceLedger:
        """A ledger accepting the races listed in *path* (a file this class wrote)."""
        if not path:
            return cls(root)
        problem = None
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            entries = data.get("races") if isinstance(data, dict) else None
            if not isinstance(entries, list):
                problem = "it has no 'races' list"
            else:
                return cls(root, entries)
        except (OSError, ValueError) as exc:
            problem = str(exc)
        except (KeyError, TypeError) as exc:
            problem = f"an entry lacks {exc}"
        raise ValueError(
            f"cannot read the race baseline {path!r}: {problem}; give a file that "
            "'pytest --fermion-races --fermion-races-json FILE' wrote"
        )

    @staticmethod
    def _key_of_entry(entry: dict[str, Any]) -> tuple[Any, ...]:
        sites = tuple(sorted((str(f), str(fn)) for f, fn in entry["sites"]))
        return str(entry["kind"]), str(entry["object"]), sites

    def add(self, test: str, findings: Iterable[Finding]) -> list[Finding]:
        """Record *test*'s findings; the ones that are new (neither known from the
        baseline nor already reported by an earlier test)."""
        new = []
        for finding in findings:
            key = race_key(finding, self.root)
            seen = self.races.get(key)
            if seen is None:
                known = key in self._baseline
                self.races[key] = SeenRace(finding, [test], known)
                if not known:
                    new.append(finding)
            elif test not in seen.tests:
                seen.tests.append(test)
        return new

    def unknown(self) -> list[SeenRace]:
        return [race for race in self.races.values() if not race.known]

    # -- output ---------------------------------------------------------------------

    def _module(self, race: SeenRace) -> str:
        first = race.finding.locations[0] if race.finding.locations else None
        return _relative(first.file, self.root) if first else "?"

    def summary(self) -> str:
        """Races grouped by module and object, with the tests that touch each."""
        if not self.races:
            return "no data races found"
        groups: dict[tuple[str, str], list[SeenRace]] = {}
        for race in self.races.values():
            groups.setdefault((self._module(race), race_object(race.finding)), []).append(race)
        new = len(self.unknown())
        lines = [
            f"{len(self.races)} data race(s) ({new} new, {len(self.races) - new} in the "
            "baseline), by module and object:"
        ]
        for (module, obj), races in sorted(groups.items()):
            lines.append(f"  {module}: {obj}")
            for race in races:
                tag = "known" if race.known else "NEW"
                sites = " / ".join(
                    f"{_relative(loc.file, self.root)}:{loc.line} in {loc.function}"
                    for loc in race.finding.locations
                )
                shown = ", ".join(race.tests[:3]) + (
                    f" and {len(race.tests) - 3} more" if len(race.tests) > 3 else ""
                )
                lines.append(f"    [{tag}] {sites}")
                lines.append(f"           tests: {shown}")
        return "\n".join(lines)

    def to_json(self) -> str:
        """Every race with its tests; the file is also a baseline (--fermion-baseline)."""
        races = []
        for key, race in self.races.items():
            kind, obj, sites = key
            races.append(
                {
                    "kind": kind,
                    "object": obj,
                    "sites": [list(site) for site in sites],
                    "known": race.known,
                    "tests": race.tests,
                    "finding": race.finding.to_dict(),
                }
            )
        return json.dumps({"races": races}, indent=2) + "\n"

    def to_sarif(self) -> str:
        return Report([race.finding for race in self.races.values()]).to_sarif()
