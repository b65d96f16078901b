"""The ``fermion stress`` command (kept apart so that ``import fermion`` never imports click)."""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from collections.abc import Callable
from typing import Any

import click

from fermion.teach._stress import stress, stress_script

__all__ = ["stress_command"]


def _load_trial(target: str) -> Callable[..., Any]:
    """``path.py:func`` or ``package.module:func`` to the function it names."""
    location, _, func_name = target.rpartition(":")
    if location.endswith(".py"):
        if not os.path.isfile(location):
            raise FileNotFoundError(f"stress: no script at {location!r}")
        namespace = runpy.run_path(location, run_name="__fermion_stress__")
    else:
        namespace = vars(importlib.import_module(location))
    trial = namespace.get(func_name)
    if not callable(trial):
        raise LookupError(f"stress: {location!r} has no function {func_name!r}")
    return trial


@click.command(
    "stress",
    context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]},
)
@click.option(
    "--runs", default=50, show_default=True, type=click.IntRange(min=1), help="How many runs."
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Threads per run (passed to a function trial as its argument).",
)
@click.option(
    "--switch-interval",
    default=1e-6,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="sys.setswitchinterval during the runs, in seconds.",
)
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def stress_command(
    runs: int, threads: int, switch_interval: float, target: str, args: tuple[str, ...]
) -> None:
    """Run TARGET many times under a tiny switch interval and report how often it fails.

    TARGET is a script (``prog.py``; a run fails if it raises or exits non-zero) or a
    trial function (``prog.py:trial`` or ``package.module:trial``), called as
    ``trial(threads)``; it fails by raising or by returning ``(observed, expected)``
    that differ. Exit status: 0 if no run failed, 1 if some did, 2 on a usage error.
    """
    try:
        if ":" in target and not os.path.isfile(target):
            result = stress(
                _load_trial(target), runs=runs, threads=threads, switch_interval=switch_interval
            )
        else:
            result = stress_script(target, args, runs=runs, switch_interval=switch_interval)
    except (FileNotFoundError, LookupError, ImportError) as error:
        raise click.UsageError(str(error)) from None
    click.echo(result.to_text())
    sys.exit(1 if result.failures else 0)
