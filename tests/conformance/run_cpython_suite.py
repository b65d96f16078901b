"""CPython's own ``test_concurrent_futures`` (the 3.11 suite) as fermion's conformance test.

    python tests/conformance/run_cpython_suite.py [--backend threads|processes|auto|serial ...]

The suite is not part of the repository: it is found, or obtained, when the session
runs (``find_suite``: ``$FERMION_CPYTHON_SUITE``, Debian's ``libpython3.11-testsuite``
if installed, a cached copy, else that package downloaded with ``apt-get download``
and unpacked without installing it). Its one file is copied to a temporary folder and
imported with the running interpreter's own ``test.support``.

Each backend runs in a fresh interpreter of its own. ``_cf_adapter`` puts fermion
executors under the standard names: ``ThreadPoolExecutor`` is ``threads``, ``auto`` or
``serial``; ``ProcessPoolExecutor`` is ``processes`` with the start method of the test's
``mp_context`` (fork, forkserver, spawn). A backend runs the test classes built on its
mixin; the ``threads`` session also runs ``FutureTests`` on fermion's Future.

``cpython_suite_exclusions.toml`` says which tests are not run (they read CPython's
internals) and which are known to fail, each with its reason. The session fails on any
other failure, and on a known failure that passes (so that the list stays honest).
A test that runs past ``--test-timeout`` is a failure: its stacks are dumped, and the
session goes on in a fresh interpreter after it.
"""

from __future__ import annotations

import argparse
import faulthandler
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import types
import unittest
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _adapted import ADAPTED  # noqa: E402 (found next to this script)

EXCLUSIONS = HERE / "cpython_suite_exclusions.toml"
BACKENDS = ("threads", "processes", "auto", "serial")
SUITE_VERSION = "3.11"
SUITE_FILE = "test_concurrent_futures.py"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fermion-cpython-suite"

_PROCESS_MIXINS = ("ProcessPoolForkMixin", "ProcessPoolForkserverMixin", "ProcessPoolSpawnMixin")


# -- obtaining the suite ----------------------------------------------------------------


def find_suite() -> Path:
    """The 3.11 ``test_concurrent_futures.py``: found, or obtained from Debian's package."""
    env = os.environ.get("FERMION_CPYTHON_SUITE")
    if env:
        path = Path(env)
        if not path.is_file():
            raise SystemExit(f"FERMION_CPYTHON_SUITE={env} is not a file")
        return path
    cached = CACHE / SUITE_VERSION / SUITE_FILE
    for candidate in (Path(f"/usr/lib/python{SUITE_VERSION}/test") / SUITE_FILE, cached):
        if candidate.is_file():
            return candidate
    package = f"libpython{SUITE_VERSION}-testsuite"
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise SystemExit(
            f"CPython {SUITE_VERSION}'s {SUITE_FILE} was not found and cannot be obtained "
            f"here (no apt-get/dpkg-deb): set FERMION_CPYTHON_SUITE to its path"
        )
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "-q", package], cwd=tmp, check=True)
        (deb,) = Path(tmp).glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        found = Path(tmp) / "x" / f"usr/lib/python{SUITE_VERSION}/test" / SUITE_FILE
        if not found.is_file():
            raise SystemExit(f"{package} ({deb.name}) holds no {SUITE_FILE}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found, cached)
    return cached


# -- the expectations -----------------------------------------------------------------


def load_exclusions(backend: str) -> tuple[dict[str, str], dict[str, str]]:
    """(not run, known failures) for ``backend`` on this build: pattern -> reason.
    A table's scope is a backend or ``all``, alone or with ``@gil``/``@free-threaded``."""
    with EXCLUSIONS.open("rb") as f:
        data = tomllib.load(f)
    not_run: dict[str, str] = {}
    known: dict[str, str] = {}
    build = "gil" if getattr(sys, "_is_gil_enabled", lambda: True)() else "free-threaded"
    scopes = ("all", backend, f"all@{build}", f"{backend}@{build}")
    for table, into in (("not_run", not_run), ("known", known)):
        for scope in scopes:
            into.update(data.get(table, {}).get(scope, {}))
    return not_run, known


def _match(test_id: str, patterns: dict[str, str]) -> str | None:
    for pattern, reason in patterns.items():
        if fnmatch.fnmatchcase(test_id, pattern):
            return reason
    return None


# -- one backend, in a child interpreter ------------------------------------------------


def _selected(case: unittest.TestCase, backend: str) -> bool:
    names = {cls.__name__ for cls in type(case).__mro__}
    if backend == "processes":
        return bool(names.intersection(_PROCESS_MIXINS))
    if "ThreadPoolMixin" in names:
        return True
    return backend == "threads" and type(case).__name__ == "FutureTests"


def _flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    cases: list[unittest.TestCase] = []
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            cases.extend(_flatten(item))
        else:
            cases.append(item)
    return cases


def _test_id(case: unittest.TestCase) -> str:
    return f"{type(case).__name__}.{case._testMethodName}"


class _Recorder(unittest.TextTestResult):
    """Writes ``start``/outcome lines to the log as they happen (a hang leaves a
    ``start`` alone) and arms faulthandler for each test."""

    def __init__(self, log: Any, timeout: float, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._log = log
        self._timeout = timeout
        self._outcome: dict[str, Any] = {}

    def _write(self, record: dict[str, Any]) -> None:
        self._log.write(json.dumps(record) + "\n")
        self._log.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        self._outcome = {"id": _test_id(test), "outcome": "pass", "detail": ""}
        self._started = time.monotonic()
        self._write({"id": _test_id(test), "outcome": "start"})
        # To the real stderr: a test may have replaced sys.stderr (captured_stderr).
        faulthandler.dump_traceback_later(self._timeout, exit=True, file=sys.__stderr__)
        super().startTest(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        self._outcome["seconds"] = round(time.monotonic() - self._started, 2)
        self._write(self._outcome)

    def _set(self, outcome: str, detail: str) -> None:
        if self._outcome.get("outcome") in ("fail", "error"):
            return  # the first failure of a test is the one to report
        self._outcome.update(outcome=outcome, detail=detail)

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._set("fail", self._exc_info_to_string(err, test))

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        if isinstance(test, unittest.TestCase):
            self._set("error", self._exc_info_to_string(err, test))

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failure = issubclass(err[0], test.failureException)
            self._set("fail" if failure else "error", self._exc_info_to_string(err, test))

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._set("skip", reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._set("skip", "expected failure in CPython's suite")


def _load_suite_module(suite: Path, backend: str, workdir: Path) -> Any:
    """Import the suite from a copy in ``workdir``, with fermion's executors installed."""
    shutil.copyfile(suite, workdir / SUITE_FILE)
    sys.path[:0] = [str(workdir), str(HERE)]
    import _cf_adapter

    from fermion.executors._future import Future as FermionFuture

    thread_backend = "threads" if backend == "processes" else backend
    _cf_adapter.install(thread_backend)
    import test_concurrent_futures as module  # type: ignore[import-not-found]

    module.ThreadPoolMixin.executor_type = _cf_adapter.ThreadPoolExecutor
    for name in _PROCESS_MIXINS:
        getattr(module, name).executor_type = _cf_adapter.ProcessPoolExecutor
    module.Future = FermionFuture  # create_future(): FutureTests test fermion's Future

    # Tests that run a script in a fresh interpreter: install the executors there first,
    # and let the script import the suite under the name it has in CPython's tree.
    preamble = (
        f"import sys; sys.path[:0] = [{str(workdir)!r}, {str(HERE)!r}]; "
        f"import _cf_adapter; _cf_adapter.install({thread_backend!r}); "
        "import test_concurrent_futures; "
        "sys.modules['test.test_concurrent_futures'] = test_concurrent_futures\n"
    )
    original = module.assert_python_ok

    def assert_python_ok(*args: str, **env: Any) -> Any:
        args_list = list(args)
        if "-c" in args_list:
            at = args_list.index("-c") + 1
            args_list[at] = preamble + args_list[at]
        return original(*args_list, **env)

    module.assert_python_ok = assert_python_ok
    return module


def run_child(
    backend: str,
    suite: Path,
    log_path: Path,
    done: set[str],
    timeout: float,
    only: list[str] | None = None,
) -> int:
    not_run, _ = load_exclusions(backend)
    with tempfile.TemporaryDirectory(prefix="fermion-cf-") as tmp:
        # Workers started by spawn or forkserver import the suite's module by name.
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [tmp, str(HERE), os.environ.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        module = _load_suite_module(suite, backend, Path(tmp))
        cases = [
            case
            for case in _flatten(unittest.defaultTestLoader.loadTestsFromModule(module))
            if _selected(case, backend)
            and _test_id(case) not in done
            and (not only or any(fnmatch.fnmatchcase(_test_id(case), p) for p in only))
        ]
        for case in cases:
            reason = _match(_test_id(case), not_run)
            if reason is not None:
                skipped = unittest.skip(f"not run: {reason}")(lambda: None)
                setattr(case, case._testMethodName, skipped)
                continue
            for pattern, (_, body) in ADAPTED.items():
                if fnmatch.fnmatchcase(_test_id(case), pattern):
                    setattr(case, case._testMethodName, types.MethodType(body, case))
        with log_path.open("a") as log:
            runner = unittest.TextTestRunner(
                stream=sys.stderr,
                verbosity=2,
                resultclass=lambda *a, **k: _Recorder(log, timeout, *a, **k),
            )
            runner.run(unittest.TestSuite(cases))
    return 0


# -- the session ---------------------------------------------------------------------------


def _read_log(log_path: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Finished tests by id, and the test started but never finished (hung), if any."""
    results: dict[str, dict[str, Any]] = {}
    started: str | None = None
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            record = json.loads(line)
            if record["outcome"] == "start":
                started = record["id"]
            else:
                results[record["id"]] = record
                started = None
    return results, started


def run_backend(
    backend: str, suite: Path, timeout: float, verbose: bool, only: list[str] | None = None
) -> dict[str, Any]:
    """Run one backend's tests in child interpreters until every test has an outcome."""
    with tempfile.TemporaryDirectory(prefix="fermion-cf-log-") as tmp:
        log_path = Path(tmp) / "log.jsonl"
        done_path = Path(tmp) / "done.json"
        while True:
            results, _ = _read_log(log_path)
            done_path.write_text(json.dumps(sorted(results)))
            command = [
                sys.executable,
                __file__,
                "--child",
                backend,
                "--suite",
                str(suite),
                "--log",
                str(log_path),
                "--done",
                str(done_path),
                "--test-timeout",
                str(timeout),
                *(f"--only={pattern}" for pattern in only or ()),
            ]
            child = subprocess.run(
                command,
                stdout=None if verbose else subprocess.DEVNULL,
                stderr=None if verbose else subprocess.PIPE,
                text=True,
            )
            results, hung = _read_log(log_path)
            if hung is None:
                if child.returncode != 0:
                    tail = (child.stderr or "")[-3000:]
                    raise SystemExit(
                        f"{backend}: the suite's interpreter exited {child.returncode}:\n{tail}"
                    )
                return results
            detail = f"(its interpreter exited {child.returncode})\n" + (child.stderr or "")[-6000:]
            with log_path.open("a") as log:
                record = {"id": hung, "outcome": "hang", "detail": detail, "seconds": timeout}
                log.write(json.dumps(record) + "\n")


def judge(backend: str, results: dict[str, dict[str, Any]]) -> list[str]:
    """The problems: unexpected failures, and known failures that pass."""
    _, known = load_exclusions(backend)
    problems = []
    counts = {"pass": 0, "fail": 0, "known": 0, "not run": 0, "skip": 0}
    for test_id, record in sorted(results.items()):
        outcome = record["outcome"]
        reason = _match(test_id, known)
        if outcome == "skip":
            counts["not run" if record["detail"].startswith("not run:") else "skip"] += 1
        elif outcome == "pass":
            counts["pass"] += 1
            if reason is not None:
                problems.append(f"{backend}: {test_id} passes but is listed as known ({reason})")
        elif reason is not None:
            counts["known"] += 1
        else:
            counts["fail"] += 1
            first = record["detail"].strip().splitlines()[-1:] or [""]
            problems.append(f"{backend}: {test_id} {outcome}: {first[0]}\n{record['detail']}")
    ran = counts["pass"] + counts["fail"] + counts["known"]
    print(
        f"{backend}: {counts['pass']} of {ran} pass ({counts['known']} known failures, "
        f"{counts['fail']} unexpected); {counts['not run']} not run (internals), "
        f"{counts['skip']} skipped by the suite"
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    parser.add_argument("--test-timeout", type=float, default=60.0)
    parser.add_argument("--verbose", action="store_true", help="the suite's own output")
    parser.add_argument(
        "--only", action="append", metavar="PATTERN", help="run the tests matching it (fnmatch)"
    )
    parser.add_argument("--json", type=Path, help="write every test's outcome here")
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--suite", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--done", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        done = set(json.loads(args.done.read_text()))
        return run_child(args.child, args.suite, args.log, done, args.test_timeout, args.only)
    suite = find_suite()
    print(f"CPython {SUITE_VERSION} suite: {suite}; interpreter {sys.version.split()[0]}")
    problems: list[str] = []
    every: dict[str, Any] = {}
    for backend in args.backend or BACKENDS:
        results = run_backend(backend, suite, args.test_timeout, args.verbose, args.only)
        every[backend] = results
        problems += judge(backend, results)
    if args.json:
        args.json.write_text(json.dumps(every, indent=1))
    for problem in problems:
        print("\n" + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
