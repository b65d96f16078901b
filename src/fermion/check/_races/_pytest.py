"""``pytest --fermion-races``: fail a test whose code races, with the race report.

Loaded in every pytest run (entry point ``fermion_races``) and does nothing unless
``--fermion-races`` is given: no import of the race machinery, no hook installed.

With the option, the modules under the rootdir (not the test files themselves, which
keep pytest's assertion rewriting: whatever the project's ``python_files`` globs
match, and ``conftest.py``; never site-packages) plus any
``--fermion-races-include PATTERN`` modules are instrumented when imported; each
test's call phase is one recording window, and a test whose window saw a race fails
with the report.
"""

from __future__ import annotations

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


class _RacePlugin:
    def __init__(self, rootdir: str, include: list[str], skip_files: list[str]) -> None:
        from fermion.check._races.session import RaceSession

        self.session = RaceSession([rootdir], include, skip_files=skip_files)
        self.session.install()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        self.session.begin()
        try:
            result = yield
        finally:
            findings = self.session.end()
        if findings:
            from fermion.check._report import Report

            text = Report(findings).to_text()
            pytest.fail(
                f"{item.nodeid}: data race(s) found (pytest --fermion-races):\n{text}",
                pytrace=False,
            )
        return result

    def close(self) -> None:
        self.session.uninstall()


_PLUGIN_NAME = "fermion-races-session"


def _install(config: pytest.Config, rootdir: str, include: list[str]) -> None:
    if config.pluginmanager.get_plugin(_PLUGIN_NAME) is None:
        plugin = _RacePlugin(rootdir, include, _test_files(config))
        config.pluginmanager.register(plugin, _PLUGIN_NAME)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    # Install before conftest.py files import the code under test.
    namespace = early_config.known_args_namespace
    if getattr(namespace, "fermion_races", False):
        _install(
            early_config,
            str(early_config.rootpath),
            list(getattr(namespace, "fermion_races_include", [])),
        )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("fermion_races"):
        _install(config, str(config.rootpath), list(config.getoption("fermion_races_include")))


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(_PLUGIN_NAME)
    if plugin is not None:
        plugin.close()
        config.pluginmanager.unregister(plugin, _PLUGIN_NAME)
