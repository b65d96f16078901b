"""What runs on a Dask worker for the dask backend: one fermion task, all its calls.

Kept apart from ``_dask.py`` so that it imports nothing heavy: workers unpickle a
reference to ``run_task`` and import this module. A task travels as bytes (pickled by
the caller with cloudpickle) and comes back as bytes, so that every pickling failure is
caught here or in the caller and reported with a name (SerializationError), never as an
opaque Dask error about a result that cannot be sent.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import cloudpickle

from fermion.errors import (
    RETURN_PICKLABLE,
    SerializationError,
    describe_exception,
    name_call,
    unloadable,
    unpicklable,
)
from fermion.executors import _log_records
from fermion.executors._remote_calls import ARGS_KWARGS, run_calls

__all__ = ["STARTED_FIELD_TASK", "STARTED_FIELD_WORKER", "dumps", "pack_failure", "run_task"]

STARTED_FIELD_TASK = "task"
STARTED_FIELD_WORKER = "worker"

#: How failed calls travel: call index -> (exception, remote traceback text or None).
WireErrors = dict[int, tuple[BaseException, "str | None"]]


def dumps(obj: Any) -> bytes:
    """Pickle with the standard library's fast pickler; cloudpickle only when needed
    (lambdas, closures, classes defined in ``__main__``)."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _announce_start(topic: str, task_id: int) -> None:
    """Tell the caller that the task runs now and where (its timeout starts here)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not on a Dask worker (a test calling run_task)
        return
    worker.log_event(topic, {STARTED_FIELD_TASK: task_id, STARTED_FIELD_WORKER: worker.address})


def _format_traceback(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f'\n"""\n{text}"""'


def pack_failure(exc: BaseException) -> bytes:
    """The whole task failed before any call ran (e.g. its payload would not unpickle)."""
    return dumps(("failed", exc, _format_traceback(exc)))


def _unpicklable(
    index: int, first_item: int | None, what: str, value: Any, exc: Exception
) -> SerializationError:
    return unpicklable(
        name_call(first_item, index),
        what,
        type(value).__qualname__,
        describe_exception(exc),
        "to send it back from the Dask worker",
        RETURN_PICKLABLE,
    )


_levels_lock = threading.Lock()
_levels_users = 0  # tasks running with the caller's levels set on this worker
_saved_levels: _log_records.Levels | None = None  # the worker's own, put back after


@contextlib.contextmanager
def _capturing_logs(levels: _log_records.Levels, records: list[dict[str, Any]]) -> Iterator[None]:
    """While the task runs: the caller's log levels on this worker, and every record
    logged by the task's thread kept (as a dict) to travel back with its outcomes.
    Tasks of one caller running at once in the worker's threads share the levels."""
    global _levels_users, _saved_levels
    handler = _log_records.ForwardingHandler(records.append, only_thread=threading.get_ident())
    with _levels_lock:
        if _levels_users == 0:
            _saved_levels = _log_records.take_levels()
            _log_records.apply_levels(levels)
        _levels_users += 1
        logging.root.addHandler(handler)
    try:
        yield
    finally:
        with _levels_lock:
            logging.root.removeHandler(handler)
            _levels_users -= 1
            if _levels_users == 0 and _saved_levels is not None:
                _log_records.apply_levels(_saved_levels)


def _pack_outcomes(
    values: list[Any],
    errors: WireErrors,
    seconds: float,
    records: list[dict[str, Any]],
    first_item: int | None,
) -> bytes:
    try:
        return dumps(("ok", values, errors, seconds, records))
    except Exception:
        pass
    # Find the culprits one by one; each fails its own call only.
    for index, value in enumerate(values):
        if index in errors:
            continue
        try:
            dumps(value)
        except Exception as exc:
            values[index] = None
            errors[index] = (_unpicklable(index, first_item, "result", value, exc), None)
    for index, (error, tb) in list(errors.items()):
        try:
            dumps(error)
        except Exception as exc:
            errors[index] = (_unpicklable(index, first_item, "exception", error, exc), tb)
    return dumps(("ok", values, errors, seconds, records))


def run_task(
    fn_payload: bytes,
    calls_payload: bytes,
    topic: str | None,
    task_id: int,
    log_levels: _log_records.Levels | None = None,
    first_item: int | None = None,
    subject: str | None = None,
) -> bytes:
    """Run every call of one fermion task; return the pickled outcomes.

    Never raises for a problem of the task itself: each call's exception becomes that
    call's outcome, with its traceback as text (tracebacks do not pickle). The
    outcomes come with the seconds the calls took here, without Dask's overhead, and
    with the records the task logged at the caller's ``log_levels`` (None: none kept),
    which the caller replays through its own logging. *subject* names the task's
    calls in errors (``Task.describe``).
    """
    if topic is not None:
        _announce_start(topic, task_id)
    try:
        fn = pickle.loads(fn_payload)
        calls = pickle.loads(calls_payload)
    except BaseException as exc:
        subject = subject or f"fermion task {task_id}"
        error = unloadable(
            subject,
            "function or arguments",
            type(exc).__qualname__,
            describe_exception(exc),
            "on the Dask worker",
            "install the modules they come from on every worker, in the same versions as "
            "the caller",
        )
        return pack_failure(error)
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    capture = (
        contextlib.nullcontext() if log_levels is None else _capturing_logs(log_levels, records)
    )
    with capture:
        values, errors = run_calls(fn, ARGS_KWARGS, calls)
    return _pack_outcomes(values, errors, time.perf_counter() - started, records, first_item)
