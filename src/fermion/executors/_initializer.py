"""A worker's ``initializer``: checked where the executor is built, run where the worker
starts (a pool thread or a worker process), its failure logged as the standard
library logs it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["check_initializer", "run_initializer"]

#: The standard library's logger: "Exception in initializer:" reaches the handlers a
#: program set up for concurrent.futures, whichever executor it uses.
_log = logging.getLogger("concurrent.futures")


def check_initializer(
    initializer: Callable[..., Any] | None, initargs: Iterable[Any], backend: str
) -> tuple[Any, ...]:
    """``initargs`` as a tuple; TypeError if ``initializer`` is neither None nor callable."""
    if initializer is not None and not callable(initializer):
        raise TypeError(
            f"{backend} backend: initializer must be callable or None, got {initializer!r} "
            f"({type(initializer).__name__})"
        )
    try:
        return tuple(initargs)
    except TypeError:
        raise TypeError(
            f"{backend} backend: initargs must be an iterable of arguments for the "
            f"initializer, got {initargs!r} ({type(initargs).__name__})"
        ) from None


def run_initializer(initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> Exception | None:
    """Call ``initializer(*initargs)``; the exception it raised (logged), or None."""
    try:
        initializer(*initargs)
    except Exception as exc:
        _log.critical("Exception in initializer:", exc_info=True)
        return exc
    return None
