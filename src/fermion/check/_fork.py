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
from collections.abc import Set as AbstractSet
from typing import Any

__all__ = ["fork_hazards"]


def fork_hazards(
    forking: int,
    holders: Mapping[int, Sequence[Any]],
    inside_fork: Mapping[int, AbstractSet[int]] | None = None,
) -> list[tuple[int, Any]]:
    """``(holder, lock)`` for every lock held by a thread other than *forking*.

    The forking thread's own locks are not hazards: it exists in the child too, and
    ``threading``'s locks it holds are its to release there. *inside_fork* maps each
    other thread that is itself inside ``os.fork()`` to the ids of the locks it held
    when it entered: the locks it took since were taken by at-fork handlers around its
    fork (``os.register_at_fork(before=lock.acquire, ...)``, as ``concurrent.futures``
    does), are released when that fork is done, and *forking*'s own handlers wait for
    them before its fork happens, so they are no hazard.
    """
    inside = inside_fork or {}
    return [
        (thread, lock)
        for thread, locks in holders.items()
        if thread != forking
        for lock in locks
        if thread not in inside or id(lock) in inside[thread]
    ]
