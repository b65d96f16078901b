"""Choosing how worker processes start, how many there are, and starting one.

forkserver is the default on Linux: workers start from a clean single-threaded
server (no copied locks or threads, as ``fork`` would give) and faster than ``spawn``,
which re-runs interpreter start-up for each worker; ``spawn`` everywhere else.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import multiprocessing.process
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

from fermion._costs._platform import cpu_count
from fermion.executors._processes import _worker

__all__ = [
    "WorkerHandle",
    "default_start_method",
    "default_workers",
    "get_context",
    "import_start_modules",
    "start_worker",
]

START_METHODS = ("spawn", "forkserver", "fork")


def default_start_method() -> str:
    """forkserver on Linux, spawn elsewhere (fork is unsafe on macOS, absent on Windows)."""
    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        return "forkserver"
    return "spawn"


def default_workers() -> int:
    """How many CPUs this process may run on (affinity and cgroup-pinned sets respected)."""
    return cpu_count()


def get_context(start_method: str | None) -> BaseContext:
    """The multiprocessing context for a start method; ValueError names the valid ones."""
    method = default_start_method() if start_method is None else start_method
    available = [m for m in START_METHODS if m in multiprocessing.get_all_start_methods()]
    if method not in available:
        raise ValueError(
            f"start_method={start_method!r} is not a start method of this platform; "
            f"use one of {', '.join(repr(m) for m in available)} (or None for the default, "
            f"{default_start_method()!r})"
        )
    return multiprocessing.get_context(method)


#: The modules that starting a worker imports, by start method (multiprocessing imports
#: them on the first start).
_START_MODULES = {
    "forkserver": ("multiprocessing.popen_forkserver", "multiprocessing.resource_tracker"),
    "spawn": (
        "multiprocessing.popen_spawn_win32"
        if sys.platform == "win32"
        else "multiprocessing.popen_spawn_posix",
        "multiprocessing.resource_tracker",
    ),
    "fork": ("multiprocessing.popen_fork",),
}


def import_start_modules(context: BaseContext) -> None:
    """Import what starting a worker with ``context`` will import, now, in the pool's
    creator's thread. An import reads files, and each read gives up the GIL: in the
    pool's thread, next to a call that holds the GIL for milliseconds (C code: a regular
    expression, a JSON parse), each read would wait for the call to end, and the first
    worker would start seconds late."""
    for name in _START_MODULES.get(context.get_start_method(), ()):
        importlib.import_module(name)


@dataclass
class WorkerHandle:
    """The parent's side of one started worker."""

    process: Any  # multiprocessing.process.BaseProcess; Any keeps mypy off its contexts
    task_conn: Connection  # parent writes tasks
    result_conn: Connection  # parent reads results


def start_worker(
    context: BaseContext,
    *,
    alive_conn: Connection,
    setup: _worker.WorkerSetup,
    fds_to_close_in_fork: list[int],
) -> WorkerHandle:
    """Start one worker process and return the parent's ends of its pipes.

    ``alive_conn`` is the read end of a pipe whose only write end the pool holds: when
    the pool's process dies, the worker reads EOF and exits (no orphans).
    ``fds_to_close_in_fork`` are the pool's own descriptors, which a forked child
    inherits and must close so that EOF on its pipes still means what it should.
    """
    task_read, task_write = context.Pipe(duplex=False)
    result_read, result_write = context.Pipe(duplex=False)
    fds: list[int] = []
    if context.get_start_method() == "fork":
        fds = [*fds_to_close_in_fork, task_write.fileno(), result_read.fileno()]
    process = context.Process(  # type: ignore[attr-defined]
        target=_worker.main,
        args=(task_read, result_write, alive_conn, setup, fds),
        name="fermion-process-worker",
        daemon=False,  # a task may start processes of its own
    )
    try:
        with _main_module_not_rerun():
            process.start()
    except BaseException:
        task_write.close()
        result_read.close()
        raise
    finally:
        task_read.close()
        result_write.close()
    return WorkerHandle(process=process, task_conn=task_write, result_conn=result_read)


_main_file_lock = threading.Lock()


@contextlib.contextmanager
def _main_module_not_rerun() -> Iterator[None]:
    """Start a worker without having it re-run a main module that is not a file.

    spawn and forkserver re-run the caller's main module in the new process (under
    the name ``__mp_main__``) from ``__main__.__file__``, so that what it defines can be
    unpickled there. A script piped on stdin (``python - <<EOF``) has ``__file__ ==
    "<stdin>"``: the worker dies on ``FileNotFoundError`` before it starts. Such a main
    module cannot be re-run, and need not be: the pool pickles the functions and
    classes of ``__main__`` by value (cloudpickle), as for ``python -c``, a notebook or
    the interactive prompt, whose ``__main__`` has no ``__file__``. So, while the
    process starts (and with it the forkserver, the first time), ``__file__`` is
    hidden exactly as it is absent for those. A main module run by name (``-m``) or
    from a file is re-run as usual."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not isinstance(path, str) or getattr(main, "__spec__", None) is not None:
        yield
        return
    original_dir = getattr(multiprocessing.process, "ORIGINAL_DIR", None)
    if not os.path.isabs(path) and original_dir is not None:
        path_now = os.path.join(original_dir, path)
    else:
        path_now = path
    if os.path.isfile(path_now):
        yield
        return
    with _main_file_lock:
        del main.__file__
        try:
            yield
        finally:
            main.__file__ = path
