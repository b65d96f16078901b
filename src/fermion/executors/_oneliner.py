"""``fermion.map``: a function over an iterable, concurrently, as a list, in one line."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from fermion.executors._executor import Executor
from fermion.executors._progress import ProgressArg

__all__ = ["map"]

T = TypeVar("T")


def map(
    fn: Callable[[Any], T],
    iterable: Iterable[Any],
    *,
    backend: str = "auto",
    workers: int | None = None,
    progress: ProgressArg = False,
    chunksize: int | str = "auto",
    task_timeout: float | None = None,
    ordered: bool = True,
    return_exceptions: bool = False,
    **backend_options: Any,
) -> list[T]:
    """``[fn(x) for x in iterable]``, run on a fresh Executor that is shut down after.

    The first exception raised by a call (in result order) is raised here, after the
    work still running has ended. ``ordered=False`` returns results in completion
    order; ``return_exceptions=True`` puts each call's exception in its result's
    place instead of raising. Other arguments as in ``Executor`` (backend options
    included) and ``Executor.imap``.
    """
    if not isinstance(ordered, bool):
        raise TypeError(f"ordered must be True or False, got {ordered!r}")
    with Executor(backend, workers, progress=progress, **backend_options) as executor:
        return executor._collect(
            fn,
            iterable,
            ordered=ordered,
            chunksize=chunksize,
            task_timeout=task_timeout,
            return_exceptions=return_exceptions,
        )
