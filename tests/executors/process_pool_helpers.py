"""Functions the process-pool tests run inside workers (kept light to import)."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

UNPICKLED = 0  # per worker process: how many CountingFunction objects were unpickled


class CountingFunction:
    """A callable that counts, in each worker, how often it was unpickled."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_counting, ())

    def __call__(self, x: int) -> tuple[int, int]:
        return (os.getpid(), UNPICKLED)


def _rebuild_counting() -> CountingFunction:
    global UNPICKLED
    UNPICKLED += 1
    return CountingFunction()


def square(x: int) -> int:
    return x * x


def pid(_: Any = None) -> int:
    return os.getpid()


def exit_now(code: int) -> None:
    os._exit(code)


def kill_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(10)


def segfault() -> None:
    ctypes.string_at(0)


def touch_then_sleep(path: str, seconds: float) -> int:
    """Say "I started" through a file, then run long."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def raise_value_error(message: str) -> None:
    raise ValueError(message)


class UnpicklableError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raise_unpicklable(message: str) -> None:
    raise UnpicklableError(message)


def return_lock() -> Any:
    return threading.Lock()


def allocate(megabytes: int) -> int:
    global _HOARD
    _HOARD = bytearray(megabytes * 1024 * 1024)
    return os.getpid()


_HOARD: bytearray | None = None
INITIALISED: Any = None


def initialise(value: Any) -> None:
    global INITIALISED
    INITIALISED = value


def initialised(_: Any = None) -> Any:
    return INITIALISED


def failing_initializer() -> None:
    raise RuntimeError("initializer exploded")


def failing_initializer_with_a_late_goodbye(path: str) -> None:
    """Fails, leaving a thread that writes ``path`` only after a pause: the worker's
    exit waits for it, as it waits for a logging QueueHandler's feeder thread."""

    def goodbye() -> None:
        time.sleep(0.3)
        Path(path).write_text("goodbye")

    threading.Thread(target=goodbye).start()
    raise RuntimeError("initializer exploded")


def sigint_ignored(_: Any = None) -> bool:
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def echo(*args: Any, **kwargs: Any) -> Any:
    return (args, kwargs)


def wait_for_file(path: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False


def _refuse_to_load() -> None:
    raise ImportError("cannot be rebuilt here")


class LoadsNowhere:
    """Pickles fine, fails to unpickle (like a class the worker cannot import)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_refuse_to_load, ())

    def __call__(self) -> None:
        return None


def touch(path: str) -> int:
    """Leave a mark that this task ran."""
    Path(path).write_text(str(os.getpid()))
    return os.getpid()


def touch_then_wait(path: str, go: str, timeout: float = 60.0) -> int:
    """Say "I started" through a file, then run until the file ``go`` exists."""
    Path(path).write_text(str(os.getpid()))
    if not wait_for_file(go, timeout):
        raise TimeoutError(f"{go} never appeared")
    return os.getpid()


def touch_then_die(path: str, go: str, timeout: float = 60.0) -> None:
    """Say "I started", wait for ``go``, then SIGKILL this worker."""
    touch_then_wait(path, go, timeout)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)


def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def echo_list(values: list[int]) -> list[int]:
    """A big result for a big argument: both bigger than a pipe holds."""
    return values + values


def put_pid(queue: Any) -> None:
    """An initializer: sends its worker's pid back through a multiprocessing queue."""
    queue.put(os.getpid())
