"""Running the calls of a task in the current thread (serial and threads backends), and
finding the argument that keeps a task from being sent elsewhere (processes, Dask)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fermion.errors import name_argument
from fermion.executors._base import BatchOutcomes, PositionalCalls, Task

__all__ = ["first_unpicklable", "run_calls"]


def first_unpicklable(
    task: Task, dumps: Callable[[Any], Any], indices: Iterable[int] | None = None
) -> tuple[int, str, Any, BaseException] | None:
    """The first argument of *task*'s calls (those at *indices*, else all) that *dumps*
    cannot pickle: ``(call index, the argument as the user wrote it, its value, the
    error)``, or None. The slow path after pickling the whole task failed."""
    calls = task.calls
    for index in range(len(calls)) if indices is None else indices:
        args, kwargs = calls[index]
        named = [(name_argument(position=p), v) for p, v in enumerate(args, start=1)]
        named += [(name_argument(keyword=k), v) for k, v in kwargs.items()]
        for what, value in named:
            try:
                dumps(value)
            except BaseException as exc:  # a SystemExit from __reduce__ names it too
                return index, what, value, exc
    return None


def run_calls(task: Task) -> BatchOutcomes:
    """Call ``task.fn`` once per call and collect the outcomes.

    An ``Exception`` becomes that call's outcome and the next call runs, so that one
    failing item of a chunk does not hide the others. A ``BaseException`` that is not
    an ``Exception`` (KeyboardInterrupt, SystemExit, an interrupt fermion sent)
    propagates: the caller decides what it means. The loops are written out per kind
    of calls because this is the per-item cost of every map.
    """
    fn = task.fn
    calls = task.calls
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    append = values.append
    if isinstance(calls, PositionalCalls):
        if calls.unpack:
            for args in calls.items:
                try:
                    append(fn(*args))
                except Exception as exc:
                    errors[len(values)] = exc
                    append(None)
        else:
            for item in calls.items:
                try:
                    append(fn(item))
                except Exception as exc:
                    errors[len(values)] = exc
                    append(None)
    else:
        for args, kwargs in calls:
            try:
                append(fn(*args, **kwargs))
            except Exception as exc:
                errors[len(values)] = exc
                append(None)
    return BatchOutcomes(values, errors)
