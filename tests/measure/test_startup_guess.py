"""The start-up time of a worker process ``auto`` expects: measured, or guessed."""

from __future__ import annotations

import sys
import types

import pytest

from fermion._costs import _startup


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a process where no worker started and no executor was made yet."""
    monkeypatch.setattr(_startup, "_startup_seconds", None)
    monkeypatch.setattr(_startup, "_cpu_at_first_executor", None)


def _main(monkeypatch: pytest.MonkeyPatch, **attributes: object) -> None:
    main = types.ModuleType("__main__")
    for name, value in attributes.items():
        setattr(main, name, value)
    monkeypatch.setitem(sys.modules, "__main__", main)


def test_the_quickest_measured_start_is_the_one_expected(fresh: None) -> None:
    assert _startup.known_worker_startup() is None
    _startup.record_worker_startup(0.4)  # the first: the forkserver's start too
    _startup.record_worker_startup(0.07)
    _startup.record_worker_startup(0.09)
    assert _startup.expected_worker_startup() == 0.07


def test_a_script_slow_to_import_is_expected_to_start_its_workers_slowly(
    fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers run the script's top level again: the CPU it used before its first
    # executor (a table built at import) counts, up to MAIN_MODULE_AT_MOST.
    _main(monkeypatch, __file__=__file__)
    monkeypatch.setattr(_startup.time, "process_time", lambda: 0.7)
    _startup.note_executor_created()
    monkeypatch.setattr(_startup.time, "process_time", lambda: 50.0)  # later work: not import
    _startup.note_executor_created()
    assert _startup.expected_worker_startup() == pytest.approx(0.7)
    monkeypatch.setattr(_startup, "_cpu_at_first_executor", 30.0)
    assert _startup.expected_worker_startup() == _startup.MAIN_MODULE_AT_MOST


def test_a_main_module_that_workers_do_not_run_again_costs_nothing(
    fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_startup.time, "process_time", lambda: 0.7)
    _startup.note_executor_created()
    for attributes in ({}, {"__file__": "<stdin>"}):  # -c, a notebook; a piped script
        _main(monkeypatch, **attributes)
        assert _startup.expected_worker_startup() == _startup.WORKER_STARTUP
    _main(monkeypatch, __spec__=object())  # python -m package: run again
    assert _startup.expected_worker_startup() == pytest.approx(0.7)
