"""Whether shared arrays this process owns pickle by content (no NumPy import here).

Kept apart from ``_array`` so that the process pool's transport can switch it on in a
worker without importing NumPy at the worker's start-up.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["owned_arrays_by_content", "owned_by_content"]

#: True while ``owned_arrays_by_content`` is active (read by ``SharedArray``'s reducer).
owned_by_content: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fermion_owned_by_content", default=False
)


@contextlib.contextmanager
def owned_arrays_by_content() -> Iterator[None]:
    """While active, shared arrays this process owns pickle by content, not by name.

    For a worker sending a result: it drops its reference right after sending, which
    would unlink the segment before the caller could open it. (By content, the
    result still travels through shared memory when the process pool's transport
    is on, and the caller gets it without a copy.)
    """
    token = owned_by_content.set(True)
    try:
        yield
    finally:
        owned_by_content.reset(token)
