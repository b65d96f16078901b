"""The code that runs inside a worker process, and the messages it exchanges.

A worker runs one task at a time: it reads ``("run", ...)`` from its task pipe, calls
the function once per call of the task, and answers with one ``("done", ...)`` holding
every outcome. The pool may already have written its next task to the pipe: the worker
starts it as soon as the answer is sent. It imports as little as it can (no ``fermion`` front, no NumPy): every
worker pays for its imports at start-up. It never decides anything about the pool: it ignores SIGINT (the parent
decides what Ctrl-C means), exits when the parent's process is gone (EOF on the
``alive`` pipe), and retires itself after ``max_tasks`` tasks or when its RSS is above
``max_memory`` bytes after a task, telling the parent in its last answer (the pool
itself stops a worker that grows past ``max_memory`` while a task runs). Records logged in it travel to the parent as ``("log", record)`` messages on
the result pipe, between its answers, and are replayed there through the caller's
logging (see ``fermion.executors._log_records``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, NamedTuple

from fermion.errors import describe_exception
from fermion.executors import _log_records
from fermion.executors._initializer import run_initializer
from fermion.executors._processes import _codec
from fermion.executors._remote_calls import run_calls

__all__ = [
    "RemoteErrorInfo",
    "UnpicklableResult",
    "WorkerSetup",
    "main",
    "readable_now",
    "run_calls",
]

# Parent -> worker: ("run", fn_id, fn_bytes | None, evict_ids, calls_kind, calls, levels | None)
# | ("stop",); ``levels``: the caller's log levels when they changed (_log_records.Levels)
RUN = "run"
STOP = "stop"
# ("skip",): do not run the task sent ahead (it was killed while it waited)
SKIP = "skip"
# Worker -> parent
READY = "ready"  # ("ready", pid): initializer done, send tasks
INIT_FAILED = "init_failed"  # ("init_failed", RemoteErrorInfo)
DONE = "done"  # ("done", values, failures, retire_reason | None): see _encode_done
REJECTED = "rejected"  # ("rejected", what, type_name, reason): could not load the task
SKIPPED = "skipped"  # ("skipped",): one per "skip"; the task was skipped or had run already
LOG = "log"  # ("log", record as a dict): a record logged in the worker (_log_records.to_wire)


#: How long a worker whose pool's process closed its end of the ``alive`` pipe waits
#: for that process to be gone before it takes it to be alive (see _exit_when_parent_dies).
OWNER_EXIT_GRACE_S = 2.0


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker needs besides its pipes; picklable by plain pickle."""

    initializer: bytes | None  # the initializer, cloudpickled
    max_tasks: int | None
    max_memory: int | None
    owner_pid: int  # the pool's process
    log_levels: _log_records.Levels | None = None  # the caller's, when the worker starts
    #: Pickled with the worker's start (multiprocessing's queues and locks may be passed).
    initargs: tuple[Any, ...] = ()


class RemoteErrorInfo(NamedTuple):
    """An exception that could not travel back itself: its type, message and traceback."""

    type_name: str
    message: str
    traceback: str
    reason: str


class UnpicklableResult(NamedTuple):
    """Stands in for a result that could not be pickled back."""

    type_name: str
    reason: str


def main(
    task_conn: Connection,
    result_conn: Connection,
    alive_conn: Connection,
    setup: WorkerSetup,
    fds_to_close: list[int],
) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sender = _ResultSender(result_conn)
    for fd in fds_to_close:  # only under fork: the pool's descriptors, inherited
        with contextlib.suppress(OSError):
            os.close(fd)
    threading.Thread(
        target=_exit_when_parent_dies,
        args=(alive_conn, setup.owner_pid),
        name="fermion-parent-watch",
        daemon=True,
    ).start()
    _forward_logs(sender, setup.log_levels)

    if setup.initializer is not None:
        error: BaseException | None
        try:
            initializer = _codec.loads(setup.initializer)
            error = run_initializer(initializer, setup.initargs)  # logged, as the stdlib's
        except BaseException as exc:
            error = exc
        if error is not None:
            sender.send(_codec.encode((INIT_FAILED, _error_info(error, ""))))
            return
    sender.send(_codec.encode((READY, os.getpid())))

    functions: dict[int, Callable[..., Any]] = {}
    unloadable: dict[int, BaseException] = {}  # why a function could not be loaded
    tasks_done = 0
    more_waiting = readable_now(task_conn)
    # A message read while checking for "skip", not unpickled yet (or why it could not
    # be read): unpickling runs the code of its objects, which may raise or crash the
    # process, and that must happen in its turn (after the answer to the task before
    # it), so that a crash is blamed on the task that holds the culprit.
    early: tuple[bytes, list[Any]] | BaseException | None = None
    while True:
        try:
            if early is None:
                frames = _codec.recv_frames(task_conn)
            elif isinstance(early, BaseException):
                raise early
            else:
                frames = early
        except (EOFError, OSError):
            _task_pipe_closed(alive_conn, setup.owner_pid)
            return  # the pool closed the pipe: shut down quietly
        except BaseException as exc:
            early = None
            _reject(sender, "arguments", exc)
            continue
        early = None
        try:  # an OSError here is the objects' own, not the pipe's
            message = _codec.decode(*frames)
        except BaseException as exc:
            _reject(sender, "arguments", exc)
            continue
        del frames
        if message[0] == STOP:
            return
        if message[0] == SKIP:  # came after its task had started: it ran already
            sender.send(_codec.encode((SKIPPED,)))
            continue
        _, fn_id, fn_bytes, evict, calls_kind, calls, levels = message
        if levels is not None:
            _log_records.apply_levels(levels)
        for old in evict:
            functions.pop(old, None)
            unloadable.pop(old, None)
        if fn_bytes is not None:
            try:
                functions[fn_id] = _codec.loads(fn_bytes)
            except BaseException as exc:
                unloadable[fn_id] = exc
                _reject(sender, "function", exc)
                continue
            unloadable.pop(fn_id, None)
        elif fn_id not in functions:
            # Sent ahead before the pool heard that this function could not be loaded.
            lost = unloadable.get(fn_id) or LookupError(f"function {fn_id} was never loaded")
            _reject(sender, "function", lost)
            continue
        if more_waiting():  # sent ahead, then killed before it started?
            try:
                early = _codec.recv_frames(task_conn)
            except (EOFError, OSError):
                _task_pipe_closed(alive_conn, setup.owner_pid)
                return
            except BaseException as exc:
                early = exc  # answered in its turn
            if not isinstance(early, BaseException) and early[0] == _SKIP_HEAD:
                early = None
                sender.send(_codec.encode((SKIPPED,)))
                continue
        values, failures = run_calls(functions[fn_id], calls_kind, calls)
        del calls, message
        tasks_done += 1
        retire = _retire_reason(setup, tasks_done)
        sender.send(_encode_done(values, failures, retire))
        if retire is not None:
            return


#: The "skip" message as the pool sends it (plain data: always these bytes), to spot it
#: among messages read ahead without unpickling them.
_SKIP_HEAD = _codec.plain_head((SKIP,))


class _ResultSender:
    """Writes the worker's messages to its result pipe, one whole message at a time.

    The task's own threads may log while the main thread sends an answer, so sends
    take a lock; a record logged by the sending thread inside a send (by a pickler
    hook, say) waits until that message is out instead of cutting it in two."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self._sending = False
        self._held: list[_codec.Encoded] = []

    def send(self, message: _codec.Encoded) -> None:
        with self._lock:
            if self._sending:
                self._held.append(message)
                return
            self._sending = True
            try:
                _codec.send(self._conn, message)
                while self._held:
                    _codec.send(self._conn, self._held.pop(0))
            finally:
                self._sending = False


def _forward_logs(sender: _ResultSender, levels: _log_records.Levels | None) -> None:
    """Send every record logged in this worker to the caller, and only those its levels
    let through. Handlers inherited under ``fork`` (or added by imports) go: the
    caller's own handlers print what is forwarded, and would print it twice."""
    for logger in [logging.root, *logging.root.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)

    def forward(record: dict[str, Any]) -> None:
        sender.send(_codec.encode((LOG, record)))

    logging.root.addHandler(_log_records.ForwardingHandler(forward))
    if levels is not None:
        _log_records.apply_levels(levels)


def _task_pipe_closed(alive_conn: Connection, owner_pid: int) -> None:
    """The pool's end of the task pipe is closed. When the pool's process is exiting, or
    every write end of ``alive_conn`` is closed too, it may have been killed: sweep as
    the parent watch does, here, as returning would end this process before the watch
    had its turn (a worker waiting for its next task sees the pipes close as its owner
    dies). A pool that shuts down closes ``alive_conn`` only once its workers are gone."""
    if readable_now(alive_conn)() or _process_exiting(owner_pid):
        _exit_when_parent_dies(alive_conn, owner_pid)


def _exit_when_parent_dies(alive_conn: Connection, owner_pid: int) -> None:
    """Nobody ever writes to ``alive_conn``: it becomes readable (EOF) only when every
    write end is closed, i.e. when the pool's process has exited or been killed (or
    closed the pool). If it is gone, it was killed outright (it stops its workers
    itself otherwise): its exit hooks never ran, so its shared memory and this
    worker's are swept on the way out."""
    wait([alive_conn])
    # A process closes its files before it turns into a zombie: give it a moment.
    deadline = time.monotonic() + OWNER_EXIT_GRACE_S
    while not _process_gone(owner_pid):
        if time.monotonic() > deadline:
            os._exit(1)  # alive: it closed the pool itself, and sweeps its own
        time.sleep(0.01)
    with contextlib.suppress(BaseException):
        from fermion.sharing import _segments

        # Every name under its pid is its own or its pools' (this worker's results too).
        _segments.sweep(f"{_segments.NAME_PREFIX}-{owner_pid}")
        _segments.sweep(f"{_segments.NAME_PREFIX}-{os.getpid()}")
    os._exit(1)


def _process_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie counts: it will never run again)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in (b"Z", b"X")


#: The ``PF_EXITING`` bit of a Linux task's flags: it has begun to exit (its files are
#: closed on the way, before it turns into a zombie).
_PF_EXITING = 0x4


def _process_exiting(pid: int) -> bool:
    """Whether ``pid`` has begun to exit, or has exited (Linux; False elsewhere)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return True
    except (OSError, IndexError):
        return False
    try:
        return fields[0] in (b"Z", b"X") or bool(int(fields[6]) & _PF_EXITING)
    except (IndexError, ValueError):
        return False


def readable_now(conn: Connection) -> Callable[[], bool]:
    """A check that ``conn`` has data (or is closed), cheaper than ``conn.poll()``,
    which builds a selector each call: it runs for every task and every result."""
    try:
        poller = select.poll()
    except AttributeError:  # pragma: no cover - Windows
        return conn.poll
    poller.register(conn.fileno(), select.POLLIN)
    return lambda: bool(poller.poll(0))


def _retire_reason(setup: WorkerSetup, tasks_done: int) -> str | None:
    if setup.max_tasks is not None and tasks_done >= setup.max_tasks:
        return f"it ran max_tasks_per_worker={setup.max_tasks} tasks"
    if setup.max_memory is not None:
        import psutil

        rss = psutil.Process().memory_info().rss
        if rss > setup.max_memory:
            return f"its memory (RSS {rss} bytes) exceeded max_memory_per_worker={setup.max_memory}"
    return None


def _encode_done(values: list[Any], failures: dict[int, Any], retire: str | None) -> _codec.Encoded:
    """Encode the answer; only when that fails, find and replace what cannot travel.

    ``values`` has one entry per call (None where the call raised); ``failures`` maps
    the index of each call that raised to ``(exception, traceback_text)``, or to a
    RemoteErrorInfo/UnpicklableResult standing in for what cannot travel.
    """
    for index, (exc, tb) in failures.items():
        if not _round_trips(exc):
            failures[index] = _error_info(exc, tb)
    try:
        return _codec.encode((DONE, values, failures, retire))
    except BaseException:
        pass
    for index, value in enumerate(values):
        try:
            _codec.dumps(value)
        except BaseException as exc:
            values[index] = None
            failures[index] = UnpicklableResult(type(value).__qualname__, describe_exception(exc))
    return _codec.encode((DONE, values, failures, retire))


def _round_trips(exc: BaseException) -> bool:
    """Whether an exception can be pickled here and rebuilt in the parent."""
    try:
        pickle.loads(_codec.dumps(exc))
    except BaseException:
        return False
    return True


def _error_info(exc: BaseException, tb: str | None) -> RemoteErrorInfo:
    if not tb:
        tb = "".join(traceback.format_exception(exc))
    try:
        message = str(exc)
    except BaseException:
        message = "<str() failed>"
    return RemoteErrorInfo(type(exc).__qualname__, message, tb, "it cannot be pickled")


def _reject(sender: _ResultSender, what: str, exc: BaseException) -> None:
    sender.send(_codec.encode((REJECTED, what, type(exc).__qualname__, describe_exception(exc))))
