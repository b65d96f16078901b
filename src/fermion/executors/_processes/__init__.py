"""fermion's own process pool: the ``processes`` backend.

Modules, one job each: ``_backend`` (options, the Backend face), ``_pool`` (the pool's
thread and its thread-safe front door), ``_state`` (the pool's state, changed only by
that thread), ``_worker`` (what runs in a worker process), ``_start`` (start methods,
worker count, starting a worker), ``_codec`` (pickling and the buffer transport),
``_functions`` (each function pickled once), ``_exits`` (how a worker ended, in words,
and when workers dying before they are ready break the pool). ``ProcessBackend`` is imported on first
use, so that a worker importing ``_worker`` does not load the pool's side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fermion.executors._processes._backend import ProcessBackend

__all__ = ["ProcessBackend"]


def __getattr__(name: str) -> Any:
    if name != "ProcessBackend":
        raise AttributeError(f"module 'fermion.executors._processes' has no attribute {name!r}")
    from fermion.executors._processes._backend import ProcessBackend

    globals()[name] = ProcessBackend
    return ProcessBackend
