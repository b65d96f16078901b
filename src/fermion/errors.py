"""Every public exception and warning fermion raises, in one module.

Each error names what happened, to which object, and what to do about it; keeps the
facts as attributes so programs can act on them; subclasses the standard error users
already catch; and survives pickling, so it can cross from a worker to the caller.
"""

from __future__ import annotations

import pickle
import traceback
from concurrent.futures import BrokenExecutor, CancelledError
from concurrent.futures.process import BrokenProcessPool  # see WorkerCrashedError
from typing import Any, Self

__all__ = [
    "DaskClusterError",
    "DaskWorkerLostError",
    "DeadlockError",
    "ExtraMissingError",
    "FermionError",
    "FermionWarning",
    "InitializerError",
    "LockOrderError",
    "LockOrderWarning",
    "LockReleaseWarning",
    "RaceSessionError",
    "RaceWarning",
    "RemoteError",
    "RemoteTraceback",
    "SerializationError",
    "StarvationWarning",
    "TaskKilledError",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "WorkerMemoryError",
]


def name_items(function: str, first_item: int | None, count: int) -> str:
    """How errors name the calls of a task, in the user's terms: ``"item 7 of the map
    (mod.fn)"``, ``"items 7-9 of the map (mod.fn)"`` (counted from 0, as the input is
    indexed), or ``"the submitted call of mod.fn"`` (``first_item`` None). Every
    backend's messages use this one helper, so a name means the same everywhere."""
    if first_item is None:
        return f"the submitted call of {function}"
    if count == 1:
        return f"item {first_item} of the map ({function})"
    return f"items {first_item}-{first_item + count - 1} of the map ({function})"


def name_call(first_item: int | None, index: int) -> str:
    """The call at ``index`` of a task whose first call is item ``first_item`` (None: a
    submitted call): ``"item 8 of the map"`` or ``"the call"``."""
    if first_item is None:
        return "the call"
    return f"item {first_item + index} of the map"


def name_argument(position: int | None = None, keyword: str | None = None) -> str:
    """An argument as the user wrote it: ``"positional argument 1"`` (counted from 1,
    as in Python's own messages) or ``"keyword argument 'data'"``."""
    if keyword is not None:
        return f"keyword argument {keyword!r}"
    return f"positional argument {position}"


def refused_after_shutdown(subject: str) -> RuntimeError:
    """What ``submit`` raises once *subject* (an Executor, a backend) was shut down;
    the message starts as concurrent.futures' does."""
    return RuntimeError(
        f"cannot schedule new futures after shutdown: {subject} was shut down; "
        "create a new Executor"
    )


def describe_exception(exc: BaseException) -> str:
    """``"Type: message"``, the reason errors quote, even when the exception's ``str``
    raises."""
    try:
        return f"{type(exc).__name__}: {exc}"
    except BaseException:
        return type(exc).__name__


#: What to do about a value that cannot be pickled on its way to a worker.
PASS_PICKLABLE = "pass something picklable, or create it inside the task"
#: ... and about a result (or an exception) on its way back.
RETURN_PICKLABLE = "return or raise something picklable"
#: ... and about a result that arrived but cannot be unpickled.
IMPORTABLE_RESULTS = "return objects whose classes the caller can import"


def unpicklable(
    subject: str, what: str, type_name: str, reason: str, journey: str, advice: str
) -> SerializationError:
    """*what* (``"function"``, ``"positional argument 2"``, ``"result"``) of the calls
    *subject* names, of type *type_name*, could not be pickled on its *journey*
    (``"to send it to a worker process"``, ``"to send it back from the Dask worker"``);
    *reason* is the pickler's own message, *advice* what to do."""
    return SerializationError(
        f"{subject}: the {what} of type {type_name} cannot be pickled {journey} "
        f"({reason}); {advice}",
        task=subject,
        what=what,
        type_name=type_name,
        reason=reason,
    )


def unloadable(
    subject: str, what: str, type_name: str, reason: str, where: str, advice: str
) -> SerializationError:
    """*what* of the calls *subject* names arrived but could not be unpickled *where*
    (``"in the worker process"``, ``"in the caller"``): *type_name* and *reason* are
    those of the exception unpickling raised, *advice* what to do."""
    return SerializationError(
        f"{subject}: the {what} could not be unpickled {where} ({reason}); {advice}",
        task=subject,
        what=what,
        type_name=type_name,
        reason=reason,
    )


def timed_out(
    subject: str, timeout: float, backend: str, outcome: str, took: float | None = None
) -> TaskTimeoutError:
    """The error of the calls *subject* names, which ran past their *timeout* (seconds)
    on *backend*; *outcome* says what the backend did about it, *took* how long they
    ran where that is known (a backend that cannot stop them early)."""
    ran = "" if took is None else f" (it took {took:.3g} s)"
    return TaskTimeoutError(
        f"{subject} ran longer than its timeout of {timeout:g} s{ran}; {outcome}",
        timeout=timeout,
        task=subject,
        backend=backend,
    )


class FermionError(Exception):
    """Base class of every exception fermion raises itself.

    Subclasses keep their constructor's keyword arguments in ``_fields`` so that
    ``__reduce__`` can rebuild them on the other side of a pipe.
    """

    _fields: dict[str, Any]

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self._fields = fields
        for name, value in fields.items():
            setattr(self, name, value)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self._fields))

    def fresh(self) -> Self:
        """The same error as a new object, with the same cause: to raise it again (each
        ``submit`` to a broken pool) without piling tracebacks onto one object."""
        error = type(self)(self.message, **self._fields)
        error.__cause__ = self.__cause__
        return error


def _rebuild(cls: type[FermionError], message: str, fields: dict[str, Any]) -> FermionError:
    return cls(message, **fields)


class FermionWarning(UserWarning):
    """Base class of every warning fermion issues."""


class ExtraMissingError(FermionError, ImportError):
    """A feature needs an optional dependency that is not installed.

    Fields: ``extra`` (the name to put in ``pip install 'fermion[extra]'``),
    ``package`` (the module that failed to import), ``feature``.
    """

    @classmethod
    def for_feature(cls, feature: str, extra: str, package: str) -> ExtraMissingError:
        return cls(
            f"{feature} needs the optional package {package!r}, which is not installed; "
            f"install it with: pip install 'fermion[{extra}]'",
            extra=extra,
            package=package,
            feature=feature,
        )


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as ``__cause__``.

    Printing the caller's traceback then shows the worker's frames too, as
    concurrent.futures does for process pools.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class WorkerCrashedError(FermionError, BrokenProcessPool):
    """A worker process died while it held a task.

    Only the tasks that worker held fail with this error; the pool replaces the worker
    and goes on. Fields: ``pid``, ``exitcode`` (negative for a signal, as in
    multiprocessing), ``signal_name`` (e.g. ``"SIGKILL"`` or ``None``), ``task`` (a
    short description of the task that was running). A ``BrokenProcessPool`` (and so a
    ``BrokenExecutor``), so that code written for ``ProcessPoolExecutor`` catches it.
    (That base costs ``import fermion`` the multiprocessing modules it did not load
    before: 24.9 -> 40.7 ms, best of 21 runs on 3.11.)
    """


class WorkerMemoryError(FermionError, MemoryError):
    """A worker process grew past ``max_memory_per_worker`` while it ran a task.

    The pool stopped that worker (SIGKILL) and replaced it; only this task failed.
    Fields: ``task`` (which call or item), ``pid``, ``rss`` (the resident memory seen,
    bytes) and ``limit`` (bytes).
    """

    @classmethod
    def for_task(cls, task: str, pid: int, rss: int, limit: int) -> WorkerMemoryError:
        return cls(
            f"{task} used {_megabytes(rss)} of memory (RSS of worker process {pid}), more than "
            f"max_memory_per_worker={limit} ({_megabytes(limit)}); the worker was stopped and "
            "replaced, and the pool goes on. Lower the memory the task needs (smaller "
            "chunks of data, a generator instead of a list) or raise the limit",
            task=task,
            pid=pid,
            rss=rss,
            limit=limit,
        )


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


class DaskWorkerLostError(WorkerCrashedError):
    """The dask backend: every Dask worker that ran a task died (Dask's KilledWorker).

    Dask reruns a task whose worker died on another worker, up to
    ``distributed.scheduler.allowed-failures`` times, then gives up on it. Fields as
    WorkerCrashedError (``pid``/``exitcode``/``signal_name`` are None: the scheduler
    does not know them), plus ``worker``, the address of the last worker that died.
    """


class DaskClusterError(FermionError, BrokenExecutor):
    """The dask backend cannot reach its scheduler, or the cluster dropped a task.

    Fields: ``address`` (the scheduler's address, or ``"local cluster"``).
    """


class RemoteError(FermionError, RuntimeError):
    """A task raised an exception that could not be pickled back to the caller.

    Carries what could travel: ``type_name`` (the exception's class), ``remote_message``
    (its ``str``) and ``remote_traceback``; the worker's traceback is also attached as
    ``__cause__`` (a RemoteTraceback), as for exceptions that do travel.
    """


class InitializerError(FermionError, BrokenExecutor):
    """A worker's ``initializer`` raised; the pool cannot run tasks and is broken.

    Pending and later tasks fail with this error. Fields: ``type_name``,
    ``remote_message``, ``remote_traceback`` (of the initializer's exception).
    """

    @classmethod
    def from_exception(cls, exc: BaseException, where: str) -> InitializerError:
        """The error for ``exc`` raised by the initializer ``where`` names (a pool in
        this process: the exception itself is the ``__cause__``)."""
        error = cls(
            f"{where} raised {describe_exception(exc)}; the pool cannot run tasks "
            "(fix the initializer, or build the executor without it)",
            type_name=type(exc).__qualname__,
            remote_message=str(exc),
            remote_traceback="".join(traceback.format_exception(exc)),
        )
        error.__cause__ = exc
        return error


class TaskTimeoutError(FermionError, TimeoutError):
    """A task ran longer than its timeout.

    In the processes backend the worker running it was killed and replaced. Fields:
    ``timeout`` (seconds), ``task`` (a short description), ``backend``.
    """


class TaskKilledError(FermionError, CancelledError):
    """A running task was stopped on request (``Executor.kill``). Fields: ``task``."""


class SerializationError(FermionError, pickle.PicklingError):
    """An argument, result or function of a task could not be pickled or unpickled.

    Fields: ``task`` (a short description), ``what`` (e.g. ``"argument 2"``,
    ``"keyword argument 'data'"``, ``"result"``, ``"function"``), ``type_name``
    (the type of the culprit), ``reason`` (the pickler's own message).
    """


class DeadlockError(FermionError, RuntimeError):
    """Threads wait for each other in a cycle, or every thread waits and none can wake.

    Raised at once in the thread whose wait closes a wait-for cycle (``kind ==
    "cycle"``), or, for a global stall (``kind == "stall"``: every thread blocked for
    good), in every stalled thread within about a second; ``kind == "pool"``: every
    worker of a thread pool waits for a task queued on that same pool (raised in each
    of those workers). Fields: ``kind``; ``cycle``,
    a tuple with one entry per thread, each a mapping with keys ``thread`` (its name),
    ``holds`` (a tuple of mappings ``lock``/``file``/``line``/``function``: each lock
    it holds and where it took it), ``waits_for`` (what it waits for) and
    ``file``/``line``/``function`` of the wait.
    """


class LockOrderError(FermionError, RuntimeError):
    """Locks were taken in orders that can deadlock (A then B here, B then A there).

    Fields: ``cycle``, a tuple with one mapping per edge of the cycle: ``first`` and
    ``second`` (the locks), ``thread``, ``first_file``/``first_line`` and
    ``second_file``/``second_line`` (both acquisition sites) and ``stack``.
    """


class LockOrderWarning(FermionWarning, RuntimeWarning):
    """Like LockOrderError, issued as a warning when checks run in warn mode."""


class LockReleaseWarning(FermionWarning, RuntimeWarning):
    """A checked Lock was released by a thread other than the one holding it.

    ``threading.Lock`` allows it, so the release happens; the message names the lock,
    the releasing thread and its line, and the holder and where it took the lock.
    """


class StarvationWarning(FermionWarning, RuntimeWarning):
    """A thread waited past a threshold while others kept taking the same primitive.

    The message gives the counts: how long it waited, and how many times other threads
    took the primitive (or were served by the condition) meanwhile.
    """


class RaceWarning(FermionWarning, RuntimeWarning):
    """Two threads accessed one location without synchronisation, one of them writing."""


class RaceSessionError(FermionError, RuntimeError):
    """A race-detection session could not start: one is already recording in this process.

    The detector's hooks and patches are process-wide, so sessions do not nest. Leave
    the running ``fermion.check.races()`` block (or call ``handle.stop()``) first.
    """
