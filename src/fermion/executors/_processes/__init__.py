"""fermion's own process pool: the ``processes`` backend.

Modules, one job each: ``_backend`` (options, the Backend face), ``_pool`` (the pool's
thread and its thread-safe front door), ``_state`` (the pool's state, changed only by
that thread), ``_worker`` (what runs in a worker process), ``_start`` (start methods,
worker count, starting a worker), ``_codec`` (pickling and the buffer transport).
"""

from __future__ import annotations

from fermion.executors._processes._backend import ProcessBackend

__all__ = ["ProcessBackend"]
