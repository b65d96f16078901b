"""Log records of tasks that run elsewhere, replayed through the caller's logging.

A task that calls ``logging.getLogger("app").info(...)`` in a worker process or on a
Dask worker should print where the caller's ``logging.basicConfig`` (or any handler)
would print it, with its level, logger name and format. Workers started by forkserver
or spawn have no handlers at all, and Dask workers have their own, so fermion forwards
the records: in the worker a ``ForwardingHandler`` on the root logger turns each record
into a plain dict (``to_wire``, as ``logging.handlers.QueueHandler.prepare`` does: the
message formatted, the exception rendered as text, so nothing unpicklable travels) and
hands it to the transport; in the caller ``replay`` rebuilds the record and passes it to
the logger of the same name, whose handlers, filters and levels decide what happens to
it, as for a record logged there.

Levels are the caller's: a record is only made in a worker if the caller would have
made it. ``LevelWatch`` takes a snapshot of the caller's levels (``logging.disable``,
the root's level, every logger with a level of its own) and notices when any level
changes, cheaply: ``Logger.setLevel`` and ``logging.disable`` clear the cache of every
logger's ``isEnabledFor`` answers, so a probe logger whose cache only this module fills
tells, by being empty, that the snapshot is stale. ``apply_levels`` sets a snapshot in a
worker. So debug records are not even created where nobody listens for them.

Nothing here imports more than ``logging``: process workers import it at start-up.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any

__all__ = [
    "ForwardingHandler",
    "LevelWatch",
    "Levels",
    "apply_levels",
    "replay",
    "take_levels",
    "to_wire",
]

#: ``(logging.disable level, root level, ((logger name, level), ...))``: plain data.
Levels = tuple[int, int, tuple[tuple[str, int], ...]]

#: A logger of fermion's whose ``isEnabledFor`` cache only ``LevelWatch`` fills.
_PROBE_NAME = "fermion.executors.log_levels"


def take_levels() -> Levels:
    """The caller's levels now (see the module doc)."""
    manager = logging.root.manager
    named = tuple(
        sorted(
            (name, logger.level)
            for name, logger in list(manager.loggerDict.items())
            if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
        )
    )
    return (manager.disable, logging.root.level, named)


class LevelWatch:
    """``current()``: ``(version, levels)``; the version goes up when levels change.

    One instance per pool, used by the pool's thread only; a call costs a dict lookup
    while no level changed."""

    def __init__(self) -> None:
        self._probe = logging.getLogger(_PROBE_NAME)
        self._version = 0
        self._levels: Levels | None = None

    def current(self) -> tuple[int, Levels]:
        levels = self._levels
        if levels is None or not self._probe._cache:  # type: ignore[attr-defined]
            # Fill the probe's cache first: a level set while the snapshot is taken
            # empties it again, and the next call takes another.
            self._probe.isEnabledFor(logging.DEBUG)
            fresh = take_levels()
            if fresh != levels:
                self._version += 1
                self._levels = levels = fresh
        return self._version, levels


_applied_names: set[str] = set()


def apply_levels(levels: Levels) -> None:
    """Give this process the caller's levels (in a worker, before its tasks run)."""
    disable, root_level, named = levels
    logging.disable(disable)
    logging.root.setLevel(root_level)
    names = {name for name, _ in named}
    for name in _applied_names - names:  # set in the caller before, not any more
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name, level in named:
        logging.getLogger(name).setLevel(level)
    _applied_names.clear()
    _applied_names.update(names)


#: Record attributes that cannot or need not travel (``to_wire`` renders them first).
_DROPPED = ("args", "exc_info")


def to_wire(record: logging.LogRecord) -> dict[str, Any]:
    """A record as plain data: the message formatted with its arguments, an exception
    rendered as text (``exc_text``), so that any record can be pickled."""
    data = dict(record.__dict__)
    data["msg"] = record.getMessage()
    if record.exc_info and not record.exc_text:
        data["exc_text"] = logging.Formatter().formatException(record.exc_info)
    for name in _DROPPED:
        data.pop(name, None)
    data["args"] = None
    data["exc_info"] = None
    for name, value in list(data.items()):
        if not isinstance(value, str | int | float | bool | type(None)):
            data[name] = repr(value)  # an ``extra=`` value of any type: its repr travels
    return data


def replay(data: dict[str, Any]) -> None:
    """Hand a record from a worker to the caller's logger of the same name.

    The caller's levels are checked again (they may have been raised since the worker
    was told them); then the logger's filters and handlers treat the record as one
    logged here. It runs in a pool's own thread, so nothing a handler or filter raises
    (an Exception, a SystemExit) gets out: it is reported on standard error, as
    ``logging`` reports a handler's error (``Handler.handleError``), and the pool goes
    on."""
    record = logging.makeLogRecord(data)
    logger = logging.getLogger(record.name) if record.name != "root" else logging.root
    try:
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
    except BaseException as exc:
        _report_handler_error(record, exc)


def _report_handler_error(record: logging.LogRecord, exc: BaseException) -> None:
    if not logging.raiseExceptions:
        return
    with contextlib.suppress(Exception):  # stderr gone: as logging's own handleError
        sys.stderr.write(
            f"--- Logging error ---\nreplaying a record logged by a worker (logger "
            f"{record.name!r}): a handler or filter raised\n"
            + "".join(traceback.format_exception(exc))
        )


class ForwardingHandler(logging.Handler):
    """On the root logger of a worker: every record goes to ``forward`` as a dict.

    ``only_thread``: forward only the records of that thread (a Dask worker runs
    other tasks, and its own machinery, in other threads)."""

    def __init__(
        self, forward: Callable[[dict[str, Any]], object], only_thread: int | None = None
    ) -> None:
        super().__init__(logging.NOTSET)
        self._forward = forward
        self._only_thread = only_thread

    def emit(self, record: logging.LogRecord) -> None:
        if self._only_thread is not None and record.thread != self._only_thread:
            return
        try:
            self._forward(to_wire(record))
        except Exception:
            self.handleError(record)
