"""``fermion stress``: run a concurrent trial many times and count how often it fails.

A *trial* is a function that starts its own threads and checks the outcome: it fails
by raising (an ``AssertionError`` from a check, or any error) or by returning
``(observed, expected)`` with ``observed != expected`` (or ``False``). A script is a
trial too: it fails when it raises or exits with a non-zero status. Every run uses a
tiny :func:`sys.setswitchinterval`, so a GIL build switches threads as often as it
can.

Know the limit: on GIL builds since CPython 3.10 a bare ``counter += 1`` in a loop
practically never loses an update, even at a 1 µs switch interval, because the
interpreter only switches threads at a few bytecodes (backward jumps, calls) and
never between that statement's load and store. Put one Python call between the read
and the write and updates are lost often. On the free-threaded build (3.13t) threads
really run at once and the bare version loses updates too. A stress run that sees no
failure proves nothing, which is why ``fermion check --races`` reasons about the
accesses instead of waiting for an unlucky schedule.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fermion._costs._platform import free_threaded

__all__ = ["StressResult", "free_threaded", "stress", "stress_script"]


@dataclass
class StressResult:
    """What a stress run observed.

    ``failures`` counts failed runs; ``lost`` is the summed ``expected - observed`` of
    trials that return numbers (e.g. lost counter updates) and ``expected`` the summed
    expectation, so ``lost / expected`` is the fraction of updates lost.
    """

    target: str
    runs: int
    threads: int
    switch_interval: float
    failures: int = 0
    lost: float = 0.0
    expected: float = 0.0
    elapsed: float = 0.0
    examples: list[str] = field(default_factory=list)

    @property
    def failure_rate(self) -> float:
        """The fraction of runs that failed."""
        return self.failures / self.runs if self.runs else 0.0

    @property
    def lost_fraction(self) -> float | None:
        """The fraction of expected updates lost, for trials that return numbers."""
        return self.lost / self.expected if self.expected else None

    def to_text(self) -> str:
        """A short human-readable summary."""
        build = "free-threaded, GIL off" if free_threaded() else "GIL"
        lines = [
            f"stress {self.target}: {self.failures}/{self.runs} runs failed "
            f"({self.failure_rate:.0%}) with {self.threads or 'its own'} threads, switch interval "
            f"{self.switch_interval:g} s, Python {sys.version_info.major}.{sys.version_info.minor} ({build}), "
            f"{self.elapsed:.2f} s"
        ]
        if self.lost_fraction is not None:
            lines.append(
                f"  lost {self.lost:g} of {self.expected:g} expected ({self.lost_fraction:.1%})"
            )
        for example in self.examples:
            lines.append(f"  e.g. {example}")
        if not self.failures:
            lines.append(
                "  no failure observed; this does not prove the code safe "
                "(run `fermion check --races` to find races that did not strike)"
            )
        return "\n".join(lines)


def _validate(runs: int, threads: int, switch_interval: float) -> None:
    if not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive integer, got {runs!r}")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if not switch_interval > 0:
        raise ValueError(
            f"switch_interval must be a positive number of seconds, got {switch_interval!r}"
        )


def _judge(outcome: Any, result: StressResult) -> str | None:
    """None if the run passed, else a short description of how it failed."""
    if outcome is None or outcome is True:
        return None
    if outcome is False:
        return "the trial returned False"
    if isinstance(outcome, tuple) and len(outcome) == 2:
        observed, expected = outcome
        if isinstance(observed, (int, float)) and isinstance(expected, (int, float)):
            result.lost += expected - observed
            result.expected += expected
        if observed != expected:
            return f"observed {observed!r}, expected {expected!r}"
        return None
    raise TypeError(
        f"a stress trial must return None, a bool or (observed, expected), not {type(outcome).__name__}"
    )


def stress(
    trial: Callable[..., Any],
    *,
    runs: int = 100,
    threads: int = 8,
    switch_interval: float = 1e-6,
    pass_threads: bool = True,
    max_examples: int = 3,
) -> StressResult:
    """Call *trial* *runs* times under a tiny switch interval and count failures.

    With *pass_threads*, the trial is called as ``trial(threads)`` and should start
    that many threads. Returns a :class:`StressResult`. An error that is not a failure
    of the trial (a ``TypeError`` from its return value) propagates.
    """
    if not callable(trial):
        raise TypeError(f"stress needs a callable trial, got {type(trial).__name__}")
    _validate(runs, threads, switch_interval)
    name = getattr(trial, "__qualname__", repr(trial))
    result = StressResult(name, runs, threads, switch_interval)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    started = time.perf_counter()
    try:
        for _ in range(runs):
            try:
                outcome = trial(threads) if pass_threads else trial()
            except Exception as error:
                failure: str | None = f"{type(error).__name__}: {error}"
            else:
                failure = _judge(outcome, result)
            if failure is not None:
                result.failures += 1
                if len(result.examples) < max_examples:
                    result.examples.append(failure)
    finally:
        sys.setswitchinterval(previous)
        result.elapsed = time.perf_counter() - started
    return result


def stress_script(
    path: str,
    args: Sequence[str] = (),
    *,
    runs: int = 20,
    switch_interval: float = 1e-6,
    max_examples: int = 3,
) -> StressResult:
    """Run the script at *path* *runs* times in this process; a run fails if the script
    raises or exits with a non-zero status. The script starts its own threads."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"stress: no script at {path!r}; pass the path of a Python file")
    _validate(runs, 1, switch_interval)

    def run_once() -> None:
        saved_argv = sys.argv
        sys.argv = [path, *args]
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exit_:
            if exit_.code not in (None, 0):
                raise AssertionError(f"the script exited with status {exit_.code}") from None
        finally:
            sys.argv = saved_argv

    result = stress(
        run_once,
        runs=runs,
        threads=1,
        switch_interval=switch_interval,
        pass_threads=False,
        max_examples=max_examples,
    )
    result.target = path
    result.threads = 0  # the script starts its own
    return result
