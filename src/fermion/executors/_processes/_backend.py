"""``ProcessBackend``: fermion's own process pool as an Executor backend.

Validates the options, then hands everything to ``ProcessPool``. The backend object is
only the owner's handle: when it is garbage-collected the pool shuts down gracefully,
and at interpreter exit every pool still running finishes its work, as the standard
library's does (unless the exit is Ctrl-C's: then it is terminated).
"""

from __future__ import annotations

import os
import pickle
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor
from typing import Any, ClassVar

from fermion.errors import SerializationError, describe_exception
from fermion.executors import _source_pickle
from fermion.executors._arguments import check_positive_int
from fermion.executors._base import Backend, Task, refuse_if_unusable
from fermion.executors._initializer import check_initializer
from fermion.executors._processes import _codec, _pool, _start, _worker

__all__ = ["ProcessBackend"]

_OPTIONS = (
    "start_method",
    "max_tasks_per_worker",
    "max_memory_per_worker",
    "initializer",
    "initargs",
)


class ProcessBackend(Backend):
    """Runs tasks in worker processes that survive crashes, timeouts and kills.

    Options (all keyword-only):

    - ``start_method``: ``"forkserver"`` (default on Linux), ``"spawn"`` (default
      elsewhere) or ``"fork"``.
    - ``max_tasks_per_worker``: a worker exits after this many tasks (a batch of calls
      counts as one task) and is replaced; None means never.
    - ``max_memory_per_worker``: bytes of RSS. The pool reads the RSS of each busy
      worker every 50 ms (from 50 ms after its task starts): a worker above the limit
      is killed and replaced, and its task fails with WorkerMemoryError. A worker still
      above it after a task (memory kept in globals) retires and is replaced. None
      means no limit.
    - ``initializer``/``initargs``: called once in each worker before its first task.
      If it raises, the pool is broken: tasks fail with InitializerError, and
      ``submit`` raises it.
    """

    name: ClassVar[str] = "processes"

    def __init__(
        self,
        workers: int | None = None,
        *,
        start_method: str | None = None,
        max_tasks_per_worker: int | None = None,
        max_memory_per_worker: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        **unknown: Any,
    ) -> None:
        if unknown:
            names = ", ".join(repr(n) for n in sorted(unknown))
            valid = ", ".join(repr(n) for n in _OPTIONS)
            raise TypeError(
                f"unknown option(s) for the processes backend: {names}; valid options are {valid}"
            )
        size = (
            _start.default_workers()
            if workers is None
            else check_positive_int(workers, "workers", default="the backend's default")
        )
        context = _start.get_context(start_method)
        _start.import_start_modules(context)
        if max_tasks_per_worker is not None:
            check_positive_int(max_tasks_per_worker, "max_tasks_per_worker")
        if max_memory_per_worker is not None:
            check_positive_int(max_memory_per_worker, "max_memory_per_worker")
        initargs = check_initializer(initializer, initargs, self.name)
        init_bytes = None
        if initializer is not None:
            init_bytes = _pickle_initializer(initializer)
            _check_initargs(initargs)
        self.start_method: str = context.get_start_method()
        self._pool = _pool.ProcessPool(
            size=size,
            context=context,
            setup=_worker.WorkerSetup(
                initializer=init_bytes,
                initargs=initargs,
                max_tasks=max_tasks_per_worker,
                max_memory=max_memory_per_worker,
                owner_pid=os.getpid(),
            ),
        )
        _codec.prepare_caller()  # shared-memory transport: SIGTERM removes segments
        self._finalizer = weakref.finalize(self, _pool.finalizer(self._pool))
        self._finalizer.atexit = False  # exit has its own handler: terminate

    @property
    def workers(self) -> int:
        return self._pool.state.size

    @property
    def broken(self) -> BrokenExecutor | None:
        return self._pool.state.broken

    def submit(self, task: Task) -> None:
        refuse_if_unusable(self._pool.state.broken, False, "the process pool")
        self._pool.submit(task)

    def kill(self, task: Task) -> bool:
        """Kill the worker running ``task`` (it fails with TaskKilledError) and replace it.

        Returns False if the task is not running (pending, done, or unknown)."""
        return self._pool.kill(task)

    def grow(self, workers: int) -> None:
        """Run ``workers`` workers from now on: the ones missing start now (``auto``
        starts a pool one worker short while it works here, and grows it once it hands
        the work over)."""
        self._pool.grow(check_positive_int(workers, "workers"))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait, cancel_futures)

    def terminate(self, reason: str = "terminated") -> None:
        """Stop now: cancel pending tasks, kill every worker, fail running tasks with
        TaskKilledError, and return once the workers are gone (for Ctrl-C)."""
        self._pool.terminate(reason)

    def statistics(self) -> dict[str, Any]:
        """Counters: workers_started, workers_crashed, tasks_completed, tasks_timed_out,
        tasks_killed, tasks_sent_ahead, functions_sent; plus ``worker_pids`` and ``size``."""
        return self._pool.statistics()

    def __repr__(self) -> str:
        return f"<ProcessBackend workers={self.workers} start_method={self.start_method!r}>"


def _pickle_initializer(initializer: Callable[..., Any]) -> bytes:
    try:
        return _source_pickle.dumps(initializer)
    except Exception as exc:
        reason = describe_exception(exc)
        raise SerializationError(
            f"the initializer {initializer!r} cannot be pickled to send it to worker "
            f"processes ({reason}); pass a function defined at module level",
            task=None,
            what="initializer",
            type_name=type(initializer).__qualname__,
            reason=reason,
        ) from exc


def _check_initargs(initargs: tuple[Any, ...]) -> None:
    """SerializationError if ``initargs`` cannot travel to a worker.

    They travel with the worker's start, as the standard pool sends them, so that
    multiprocessing's queues, locks and shared values can be passed: those refuse to be
    pickled at any other time (RuntimeError from multiprocessing's assert_spawning),
    which is therefore no error here."""
    for index, value in enumerate(initargs):
        try:
            pickle.dumps(value)
        except RuntimeError:
            continue  # multiprocessing's own objects: pickled when the worker starts
        except Exception as exc:
            reason = describe_exception(exc)
            raise SerializationError(
                f"initargs[{index}] ({type(value).__qualname__}) cannot be pickled to send "
                f"it to worker processes ({reason})",
                task=None,
                what=f"initargs[{index}]",
                type_name=type(value).__qualname__,
                reason=reason,
            ) from exc
