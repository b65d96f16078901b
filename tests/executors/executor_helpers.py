"""Functions the executor tests run on every backend (module level: picklable by name)."""

from __future__ import annotations

import os
import threading
import time


def square(x: int) -> int:
    return x * x


def add(a: int, b: int = 0) -> int:
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def fail_on(x: int, bad: int = 3) -> int:
    if x == bad:
        raise KeyError(f"item {x} is bad")
    return x * x


def sleep_then(seconds: float, value: int = 0) -> int:
    time.sleep(seconds)
    return value


def spin(seconds: float) -> str:
    """Pure Python busy loop: interruptible in threads, killable in processes."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "spun"


def crash_on(x: int, bad: int) -> int:
    """Kills its worker process at item ``bad`` (only ever run in processes)."""
    if x == bad:
        os._exit(3)
    return x * x


def crash_on_77(x: int) -> int:
    return crash_on(x, 77)


def thread_name(_: object = None) -> str:
    return threading.current_thread().name


def process_id(_: object = None) -> int:
    return os.getpid()


class Box:
    """A result that can be watched with a weak reference."""

    def __init__(self, value: object = None) -> None:
        self.value = value


def make_box(value: object) -> Box:
    return Box(value)


_marks = threading.local()


def init_mark(value: object) -> None:
    """An initializer: marks the worker thread that runs it."""
    _marks.value = value


def read_mark(_: object = None) -> object:
    return getattr(_marks, "value", None)


def init_fail(message: str) -> None:
    raise ValueError(message)


def keywords(_: object, **kwargs: object) -> dict[str, object]:
    return kwargs
