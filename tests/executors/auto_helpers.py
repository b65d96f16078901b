"""Reaching into an ``auto`` executor from the tests: its backend, its choice, its build."""

from __future__ import annotations

from dataclasses import replace

from fermion import Executor
from fermion.executors._auto import AutoBackend, AutoChoice


def auto_backend(executor: Executor) -> AutoBackend:
    backend = executor.backend
    assert isinstance(backend, AutoBackend)
    return backend


def choice_of(executor: Executor) -> AutoChoice:
    """The choice, waiting up to 30 s for it."""
    choice = auto_backend(executor).wait_for_choice(timeout=30)
    assert choice is not None, "auto made no choice within 30 s"
    return choice


def decide_as_if(executor: Executor, *, gil: bool) -> AutoBackend:
    """Make ``auto`` decide as it would on a build with (or without) a GIL: the choice
    depends on the build only through the machine it hands the cost model."""
    backend = auto_backend(executor)
    backend._policy.machine = replace(backend._policy.machine, gil=gil)
    return backend
