"""Objects that misbehave while they are pickled or unpickled, for the crash matrix.

Kept in an importable module (not the test file) so that they pickle by reference and
a worker process can import them; they import nothing heavy.
"""

from __future__ import annotations

import logging
from typing import Any

from process_pool_helpers import exit_now, segfault, wait_for_file

#: What a culprit does: raise an Exception (an OSError too), SystemExit or
#: KeyboardInterrupt, end its process at once (os._exit), or crash it (a segfault).
HOWS = ("error", "oserror", "exit", "interrupt", "os_exit", "segfault")
#: The status a culprit's os._exit ends its process with.
EXIT_CODE = 7


def misbehave(how: str, when: str) -> Any:
    """Fail the way ``how`` says; ``when`` ("pickled", "unpickled") goes in the message."""
    message = f"culprit {when}"
    if how == "error":
        raise ValueError(message)
    if how == "oserror":  # the kind of error a closed pipe raises too
        raise FileNotFoundError(message)
    if how == "exit":
        raise SystemExit(message)
    if how == "interrupt":
        raise KeyboardInterrupt(message)
    if how == "os_exit":
        exit_now(EXIT_CODE)
    if how == "segfault":
        segfault()
    raise AssertionError(f"unknown way to misbehave: {how!r}")


class Culprit:
    """Misbehaves (``how``) when it is pickled (``at="pickle"``) or when it is unpickled
    (``at="unpickle"``). Callable, so that it can be the task's function too."""

    def __init__(self, how: str, at: str) -> None:
        self.how = how
        self.at = at

    def __reduce__(self) -> tuple[Any, ...]:
        if self.at == "pickle":
            misbehave(self.how, "pickled")
        return (misbehave, (self.how, "unpickled"))

    def __call__(self, item: Any) -> Any:
        return item


def identity(item: Any) -> Any:
    return item


def culprit_for_one(how: str, at: str, item: Any) -> Any:
    """The result of each call: the item itself, but a Culprit for item 1 (and for the
    submitted call, whose item is None)."""
    return Culprit(how, at) if item in (1, None) else item


class UnpickledOnceExists:
    """Unpickles (as True) only once ``path`` exists: holds a worker inside unpickling
    its task until the test says go."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (wait_for_file, (self.path, 60.0))


LOGGER_NAME = "fermion_tests.crash_matrix"


def log_and_return(item: Any) -> Any:
    logging.getLogger(LOGGER_NAME).warning("logged by a worker")
    return item
