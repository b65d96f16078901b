"""Running a task's calls where their outcomes must travel (a worker process, a Dask
worker): every ``BaseException`` a call raises is that call's outcome, with its
traceback as text (tracebacks do not pickle). SIGINT is ignored in such a worker, and
a SystemExit raised by a task must not end it. Imports nothing heavy: Dask workers
import it.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from itertools import starmap
from typing import Any

__all__ = ["ARGS", "ARGS_KWARGS", "ONE_ARG", "describe", "run_calls"]

# How the calls travel: a plain list each time, so that the worker needs no fermion
# class to unpickle them.
ONE_ARG = 0  # calls: [arg, ...]; each call is fn(arg)
ARGS = 1  # calls: [(arg, ...), ...]; each call is fn(*args)
ARGS_KWARGS = 2  # calls: [((arg, ...), {name: value}), ...]


def run_calls(
    fn: Callable[..., Any], calls_kind: int, calls: list[Any]
) -> tuple[list[Any], dict[int, Any]]:
    """Call ``fn`` once per call; ``(values, failures)`` as ``_encode_done`` takes them.

    This loop is the per-item cost of every map, so the common kinds run through
    ``map``/``starmap`` consumed by ``list.extend``, at C speed. When a call raises,
    ``extend`` keeps the values appended before it and the iterator stays where it
    was: the failure is recorded and ``extend`` resumes with the next call, so no call
    runs twice.
    """
    values: list[Any] = []
    failures: dict[int, Any] = {}
    if calls_kind == ARGS_KWARGS:
        for index, (args, kwargs) in enumerate(calls):
            try:
                values.append(fn(*args, **kwargs))
            except BaseException as exc:
                values.append(None)
                failures[index] = (exc, "".join(traceback.format_exception(exc)))
        return values, failures
    results: Iterator[Any] = map(fn, calls) if calls_kind == ONE_ARG else starmap(fn, calls)
    while True:
        try:
            values.extend(results)
        except BaseException as exc:
            failures[len(values)] = (exc, "".join(traceback.format_exception(exc)))
            values.append(None)
            continue
        if len(values) == len(calls):
            return values, failures
        # A call raised StopIteration, which ``extend`` takes for the end of the calls
        # (and swallows): that call failed; the calls after it have not run yet.
        lost = StopIteration(f"{describe(fn)} raised StopIteration")
        failures[len(values)] = (lost, f"{lost} (its traceback is lost in the worker)\n")
        values.append(None)


def describe(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', None) or fn!r}"
