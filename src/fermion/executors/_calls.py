"""Running the calls of a task in the current thread (serial and threads backends)."""

from __future__ import annotations

from typing import Any

from fermion.executors._base import BatchOutcomes, PositionalCalls, Task

__all__ = ["run_calls"]


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
