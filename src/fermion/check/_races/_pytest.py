"""``pytest --fermion-races``: fail a test whose code races, with the race report.

Loaded in every pytest run (entry point ``fermion_races``) and does nothing unless
``--fermion-races`` is given: no import of the race machinery, no hook installed.

With the option, the modules under the rootdir (not the test files themselves, which
keep pytest's assertion rewriting: whatever the project's ``python_files`` globs
match, and ``conftest.py``; never site-packages) plus any
``--fermion-races-include PATTERN`` modules are instrumented when imported; each
test's call phase is one recording window, and a test whose window saw a new race fails
with the report.

``--fermion-threads N`` runs each test's body in N threads at once (see ``_parallel``;
with pytest-run-parallel installed, its threads do it). Each race is reported once, by
the first test that shows it; ``--fermion-baseline FILE`` accepts the races a JSON
summary (``--fermion-races-json FILE``) listed, so only new ones fail;
``--fermion-races-sarif FILE`` writes them for code scanning.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def _test_files(config: pytest.Config) -> list[str]:
    """The basename globs of the files pytest collects and rewrites: never instrumented."""
    globs = config.getini("python_files")
    return [*(globs if isinstance(globs, list) else str(globs).split()), "conftest.py"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fermion")
    group.addoption(
        "--fermion-races",
        action="store_true",
        default=False,
        help="fail tests whose code has data races (lockset + happens-before; fermion)",
    )
    group.addoption(
        "--fermion-races-include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="also instrument modules matching PATTERN (e.g. mypkg.*), even installed ones",
    )
    group.addoption(
        "--fermion-threads",
        type=int,
        default=1,
        metavar="N",
        help="with --fermion-races: run each test's body in N threads at once (a barrier "
        "releases them together); tests marked thread_unsafe run in one",
    )
    group.addoption(
        "--fermion-baseline",
        default=None,
        metavar="FILE",
        help="with --fermion-races: races listed in FILE (a --fermion-races-json output) "
        "are known and fail no test",
    )
    group.addoption(
        "--fermion-races-json",
        default=None,
        metavar="FILE",
        help="with --fermion-races: write every race found, with its tests, to FILE (JSON; "
        "also a baseline)",
    )
    group.addoption(
        "--fermion-races-sarif",
        default=None,
        metavar="FILE",
        help="with --fermion-races: write every race found to FILE as SARIF",
    )


@dataclass(frozen=True)
class _Options:
    rootdir: str
    include: list[str]
    threads: int = 1
    baseline: str | None = None
    json_path: str | None = None
    sarif_path: str | None = None

    @classmethod
    def read(cls, rootdir: str, get: Any) -> _Options:
        given = get("fermion_threads", 1)
        threads = 1 if given is None else int(given)
        if threads < 1:
            raise pytest.UsageError(f"--fermion-threads must be 1 or more, not {threads}")
        return cls(
            rootdir,
            list(get("fermion_races_include", []) or []),
            threads,
            get("fermion_baseline", None),
            get("fermion_races_json", None),
            get("fermion_races_sarif", None),
        )


class _RacePlugin:
    def __init__(
        self, options: _Options, *, threads_elsewhere: bool, skip_files: list[str]
    ) -> None:
        from fermion.check._races._parallel import RaceLedger
        from fermion.check._races.session import RaceSession

        try:
            self.ledger = RaceLedger.from_baseline_file(options.rootdir, options.baseline)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.options = options
        # pytest-run-parallel, when installed, runs the threads; otherwise we do.
        self.own_threads = options.threads > 1 and not threads_elsewhere
        self.single: dict[str, str] = {}  # tests run in one thread, and why
        self.threaded = 0
        self.session = RaceSession([options.rootdir], options.include, skip_files=skip_files)
        self.session.install()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        restore = self._thread_unittest_method(item)
        self.session.begin()
        try:
            result = yield
        finally:
            findings = self.session.end()
            if restore is not None:
                restore()
        new = self.ledger.add(item.nodeid, findings)
        if new:
            from fermion.check._report import Report

            text = Report(new).to_text()
            pytest.fail(
                f"{item.nodeid}: data race(s) found (pytest --fermion-races):\n{text}",
                pytrace=False,
            )
        return result

    def _runs_in_threads(self, item: pytest.Function) -> bool:
        """Whether *item*'s body runs in the threads (if not, why is recorded)."""
        from fermion.check._races import _parallel

        marker = item.get_closest_marker("thread_unsafe")
        marked = (marker.kwargs.get("reason") or "is marked thread_unsafe") if marker else None
        reason = _parallel.single_thread_reason(item.obj, item.fixturenames, marked)
        if reason is not None:
            self.single[item.nodeid] = reason
        return reason is None

    def _in_threads(self, fn: Any, kwargs: dict[str, Any], per_thread: Any) -> None:
        """Call ``fn(**kwargs)`` in the test threads; raise the first thread's error."""
        from fermion.check._races import _parallel

        threads = self.options.threads
        outcome = _parallel.run_in_threads(fn, kwargs, threads, per_thread=per_thread)
        self.threaded += 1
        index = outcome.first_index()
        if index is not None:
            error = outcome.errors[index]
            error.add_note(
                f"(in test thread {index} of {threads}; {len(outcome.errors)} of the "
                f"{threads} threads failed: pytest --fermion-threads {threads})"
            )
            raise error

    def _thread_unittest_method(self, item: pytest.Item) -> Any:
        """Run a ``unittest.TestCase`` test method in the threads, each on a test case of
        its own (``_parallel.TestCaseThreads``); the function that puts the method back,
        or None.

        pytest calls such tests through unittest, which calls ``item.obj`` (the bound
        method) after setUp: that is the one place to hand the threads the body.
        """
        from _pytest.unittest import TestCaseFunction

        from fermion.check._races import _parallel

        if not (self.own_threads and isinstance(item, TestCaseFunction)):
            return None
        if not self._runs_in_threads(item):
            return None
        method = item.obj
        cases = _parallel.TestCaseThreads(item.instance, method)

        # unittest reads skip and expected-failure flags off the method it calls
        @functools.wraps(method)
        def in_threads() -> None:
            self._in_threads(cases, {}, cases.per_thread)

        item.obj = in_threads

        def restore() -> None:
            item.obj = method

        return restore

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Any:
        if not self.own_threads or not self._runs_in_threads(pyfuncitem):
            return None
        from fermion.check._races import _parallel

        funcargs = pyfuncitem.funcargs
        kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        self._in_threads(pyfuncitem.obj, kwargs, _parallel.own_tmp_path)
        return True

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("fermion races")
        if self.own_threads:
            terminalreporter.write_line(
                f"{self.threaded} test(s) ran in {self.options.threads} threads at once, "
                f"{len(self.single)} in one"
            )
            for nodeid, reason in list(self.single.items())[:10]:
                terminalreporter.write_line(f"  one thread: {nodeid} {reason}")
        terminalreporter.write_line(self.ledger.summary())

    def close(self) -> None:
        self.session.uninstall()
        if self.options.json_path:
            Path(self.options.json_path).write_text(self.ledger.to_json(), encoding="utf-8")
        if self.options.sarif_path:
            Path(self.options.sarif_path).write_text(self.ledger.to_sarif(), encoding="utf-8")


_PLUGIN_NAME = "fermion-races-session"


_RUN_PARALLEL = "run-parallel"  # pytest-run-parallel's entry point


def _install(config: pytest.Config, options: _Options) -> None:
    if config.pluginmanager.get_plugin(_PLUGIN_NAME) is None:
        elsewhere = config.pluginmanager.has_plugin(_RUN_PARALLEL)
        config.pluginmanager.register(
            _RacePlugin(options, threads_elsewhere=elsewhere, skip_files=_test_files(config)),
            _PLUGIN_NAME,
        )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    # Install before conftest.py files import the code under test.
    namespace = early_config.known_args_namespace
    if getattr(namespace, "fermion_races", False):
        options = _Options.read(
            str(early_config.rootpath), lambda name, default: getattr(namespace, name, default)
        )
        _install(early_config, options)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("fermion_races"):
        if config.getoption("fermion_threads") != 1:
            raise pytest.UsageError(
                "--fermion-threads runs tests in threads for the race detector: give "
                "--fermion-races too (pytest-run-parallel runs tests in threads without it)"
            )
        return
    options = _Options.read(str(config.rootpath), config.getoption)
    if config.pluginmanager.has_plugin(_RUN_PARALLEL) and options.threads > 1:
        theirs = str(getattr(config.option, "parallel_threads", "1"))
        if theirs not in ("1", str(options.threads)):
            raise pytest.UsageError(
                f"--fermion-threads {options.threads} and --parallel-threads {theirs} "
                "disagree: give one of them (pytest-run-parallel runs the threads either way)"
            )
        config.option.parallel_threads = str(options.threads)
    if not config.pluginmanager.has_plugin(_RUN_PARALLEL):
        config.addinivalue_line(
            "markers", "thread_unsafe: run this test in one thread under --fermion-threads"
        )
    _install(config, options)


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(_PLUGIN_NAME)
    if plugin is not None:
        plugin.close()
        config.pluginmanager.unregister(plugin, _PLUGIN_NAME)
