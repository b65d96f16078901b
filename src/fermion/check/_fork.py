"""Fork safety: ``os.fork()`` while another thread holds a lock.

In the child of a fork only the forking thread exists; a lock another thread held at
that moment stays locked there for good, and the first thread of the child that takes
it hangs (the classic case: a logging handler's lock and ``multiprocessing`` with the
fork start method). :func:`fork_hazards` decides, purely, which holds are hazards; the
checker calls it from an ``os.register_at_fork(before=...)`` hook with the registry's
live holders and reports each one with the lock, the holder's line and the fork's line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["fork_hazards"]


def fork_hazards(forking: int, holders: Mapping[int, Sequence[Any]]) -> list[tuple[int, Any]]:
    """``(holder, lock)`` for every lock held by a thread other than *forking*.

    The forking thread's own locks are not hazards: it exists in the child too, and
    ``threading``'s locks it holds are its to release there.
    """
    return [
        (thread, lock) for thread, locks in holders.items() if thread != forking for lock in locks
    ]
