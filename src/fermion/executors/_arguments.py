"""Validation of the Executor's arguments, with messages that say what to pass instead."""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "check_buffersize",
    "check_chunksize",
    "check_positive_int",
    "check_timeout",
    "check_workers",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(value: Any, name: str, *, default: str | None = None) -> int:
    """*value* of the parameter *name*, which must be a positive int (not a bool).

    *default* says what None means where None is allowed (the caller lets None through).
    """
    wanted = "a positive integer" + ("" if default is None else f" or None ({default})")
    if not _is_int(value):
        raise TypeError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def check_workers(workers: Any) -> int | None:
    if workers is None:
        return None
    return check_positive_int(workers, "workers", default="the backend's default")


def check_timeout(timeout: Any, name: str) -> float | None:
    """None or a positive number of seconds; ``math.inf`` means no timeout (None)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"{name} must be a number of seconds or None, got {timeout!r} ({type(timeout).__name__})"
        )
    if math.isnan(timeout) or timeout <= 0:
        raise ValueError(f"{name} must be a positive number of seconds or None, got {timeout!r}")
    if math.isinf(timeout):
        return None
    return float(timeout)


def check_chunksize(chunksize: Any) -> int | None:
    """A positive int, or None for ``"auto"``."""
    if chunksize == "auto" and isinstance(chunksize, str):
        return None
    if not _is_int(chunksize) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive integer or 'auto', got {chunksize!r}")
    return int(chunksize)


def check_buffersize(buffersize: Any) -> int | None:
    if buffersize is None:
        return None
    if not _is_int(buffersize) or buffersize < 1:
        raise ValueError(f"buffersize must be a positive integer or None, got {buffersize!r}")
    return int(buffersize)
