"""fermion executors under the standard library's names, for CPython's own
``test_concurrent_futures`` (run by ``run_cpython_suite.py``).

The classes only map the standard constructors' arguments onto ``fermion.Executor``;
every behaviour is fermion's. ``install(backend)`` puts them in ``concurrent.futures``
of the running interpreter, so that the suite's tests, and the scripts some of them
run in a fresh interpreter, construct fermion executors. ``backend`` is what
``ThreadPoolExecutor`` stands for: ``threads``, ``auto`` or ``serial``.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from typing import Any

import fermion
from fermion.executors._threads import ThreadBackend

__all__ = ["ProcessPoolExecutor", "ThreadPoolExecutor", "install"]

#: What ``ThreadPoolExecutor`` constructs; ``install`` sets it.
_thread_backend = "threads"


class ThreadPoolExecutor(fermion.Executor):
    """``ThreadPoolExecutor(max_workers, thread_name_prefix, initializer, initargs)``
    as ``fermion.Executor(<the installed backend>, ...)``."""

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
    ) -> None:
        options: dict[str, Any] = {}
        if initializer is not None or tuple(initargs):
            options.update(initializer=initializer, initargs=tuple(initargs))
        if thread_name_prefix and _thread_backend == "threads":
            options["thread_name_prefix"] = thread_name_prefix
        super().__init__(_thread_backend, workers=max_workers, **options)

    @property
    def _max_workers(self) -> int:
        """The suite reads the pool size here; fermion's is ``workers``."""
        return self.workers

    @property
    def _broken(self) -> object:
        """The suite polls this until the pool is broken; fermion's is ``backend.broken``."""
        return self.backend.broken

    @property
    def _threads(self) -> set[threading.Thread]:
        """The pool's threads, as the suite reads them (``threads`` backend only)."""
        backend = self.backend
        if not isinstance(backend, ThreadBackend):
            raise AttributeError(f"{self.backend_name!r} has no pool of threads to list")
        with backend._lock:
            workers = backend._workers | backend._retired
            return {w.thread for w in workers if w.thread is not None}


class ProcessPoolExecutor(fermion.Executor):
    """``ProcessPoolExecutor(max_workers, mp_context, initializer, initargs,
    max_tasks_per_child)`` as ``fermion.Executor("processes", ...)``; the context
    gives its start method."""

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        *,
        max_tasks_per_child: int | None = None,
    ) -> None:
        start_method = None if mp_context is None else mp_context.get_start_method()
        super().__init__(
            "processes",
            workers=max_workers,
            start_method=start_method,
            initializer=initializer,
            initargs=tuple(initargs),
            max_tasks_per_worker=max_tasks_per_child,
        )

    @property
    def _broken(self) -> object:
        """The suite polls this until the pool is broken; fermion's is ``backend.broken``."""
        return self.backend.broken

    @property
    def _max_workers(self) -> int:
        """The suite reads the pool size here; fermion's is ``workers``."""
        return self.workers


def install(backend: str = "threads") -> None:
    """Make ``concurrent.futures.ThreadPoolExecutor`` (as ``backend``) and
    ``ProcessPoolExecutor`` fermion's, in this interpreter."""
    global _thread_backend
    if backend not in ("threads", "auto", "serial"):
        raise ValueError(
            f"ThreadPoolExecutor can stand for threads, auto or serial, not {backend!r}"
        )
    _thread_backend = backend
    concurrent.futures.ThreadPoolExecutor = ThreadPoolExecutor  # type: ignore[misc]
    concurrent.futures.ProcessPoolExecutor = ProcessPoolExecutor  # type: ignore[misc]
