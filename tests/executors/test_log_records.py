"""The pieces of log forwarding, with no worker: level snapshots, records as data, replay."""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Iterator

import pytest

from fermion.executors import _log_records

NAME = "fermion_tests.log_records"


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(NAME)
    yield log
    log.setLevel(logging.NOTSET)
    log.propagate = True
    for handler in list(log.handlers):
        log.removeHandler(handler)


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_level_watch_sees_every_level_change_and_nothing_else(logger: logging.Logger) -> None:
    watch = _log_records.LevelWatch()
    version, levels = watch.current()
    assert watch.current() == (version, levels)  # nothing changed: same snapshot
    logger.setLevel(logging.DEBUG)
    changed, new_levels = watch.current()
    assert changed == version + 1 and (NAME, logging.DEBUG) in new_levels[2]
    logging.getLogger(NAME + ".child")  # a new logger without a level changes nothing
    assert watch.current() == (changed, new_levels)
    logger.setLevel(logging.NOTSET)
    assert watch.current()[0] == changed + 1


def test_a_record_becomes_plain_data_whatever_its_arguments(logger: logging.Logger) -> None:
    lock = threading.Lock()  # cannot be pickled
    try:
        raise KeyError("boom")
    except KeyError as exc:
        record = logger.makeRecord(
            NAME, logging.ERROR, "f.py", 3, "held %s", (lock,), (KeyError, exc, exc.__traceback__)
        )
    data = pickle.loads(pickle.dumps(_log_records.to_wire(record)))
    assert data["msg"].startswith("held <unlocked _thread.lock object")
    assert data["args"] is None and data["exc_info"] is None
    assert "KeyError: 'boom'" in data["exc_text"]


class _Raising(logging.Handler):
    def __init__(self, raised: BaseException) -> None:
        super().__init__()
        self.raised = raised

    def emit(self, record: logging.LogRecord) -> None:
        raise self.raised


@pytest.mark.parametrize("raised", [ValueError("handler broke"), SystemExit("handler exits")])
def test_replay_survives_a_handler_that_raises(
    logger: logging.Logger, raised: BaseException, capsys: pytest.CaptureFixture[str]
) -> None:
    """Replay runs in a pool's own thread: a handler's exception is reported, not raised."""
    keep = _Keep()
    logger.addHandler(_Raising(raised))
    logger.addHandler(keep)
    logger.propagate = False
    record = logging.LogRecord(NAME, logging.WARNING, "f.py", 1, "from a worker", None, None)
    _log_records.replay(_log_records.to_wire(record))
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err
    assert f"replaying a record logged by a worker (logger {NAME!r})" in err
    assert f"{type(raised).__name__}: {raised}" in err
    assert keep.records == []  # as in logging: the handlers after a raising one are skipped


def test_replay_goes_through_the_callers_logger_and_its_level(logger: logging.Logger) -> None:
    keep = _Keep()
    logger.addHandler(keep)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for level, text in ((logging.INFO, "shown"), (logging.DEBUG, "dropped")):
        record = logging.LogRecord(NAME, level, "f.py", 1, text, None, None)
        _log_records.replay(_log_records.to_wire(record))
    assert [r.getMessage() for r in keep.records] == ["shown"]
    assert keep.records[0].name == NAME and keep.records[0].levelno == logging.INFO
