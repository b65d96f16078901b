"""Functions that run in child processes (importable by name under spawn and forkserver)."""

from __future__ import annotations

import os
import pickle
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from fermion.executors._processes import _codec
from fermion.sharing import _connection


def echo_messages(conn: Connection, count: int) -> None:
    """Receive ``count`` messages through the codec; answer each with facts about it."""
    for _ in range(count):
        message = _codec.recv(conn)
        arrays = {k: v for k, v in message.items() if isinstance(v, np.ndarray)}
        facts = {
            k: (float(v.sum()), bool(v.flags.writeable), bool(v.flags.owndata))
            for k, v in arrays.items()
        }
        _codec.send(
            conn, _codec.encode({"facts": facts, "double": {k: v * 2 for k, v in arrays.items()}})
        )


def _write_result_segment(size: int) -> str:
    """Write a result segment as a pool worker's codec does, without sending it."""
    transport = _connection._get_state().transport
    _, names = transport.export_buffers([pickle.PickleBuffer(bytearray(size))])
    return names[0]


def make_segment_then_hang(conn: Connection, size: int) -> None:
    """Report the name of a half-sent result segment, then wait to be killed."""
    conn.send(_write_result_segment(size))
    time.sleep(60)


def die_holding_a_half_made_result(size: int) -> None:
    """A task whose worker is SIGKILLed after writing a result segment, before sending it."""
    _write_result_segment(size)
    os.kill(os.getpid(), signal.SIGKILL)


def big_result(nbytes: int) -> np.ndarray:
    return np.full(nbytes // 8, 3.0)


def sleep_then_return(array: np.ndarray) -> np.ndarray:
    time.sleep(15)  # longer than a Ctrl-C test needs; short enough not to hang one
    return array


def total(array: np.ndarray) -> float:
    return float(array.sum())


def add_one(counter: Any) -> int:
    return int(counter.add(1))


def add_to_counter(counter: Any, times: int, threads: int) -> None:
    import threading

    def work() -> None:
        for _ in range(times):
            counter.add(1)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(30)


def hold_lock_forever(value: Any, ready: Any) -> None:
    value.lock.acquire()
    ready.set()
    time.sleep(60)


def fill_rows(array: Any, rows: list[int]) -> None:
    for row in rows:
        array[row] = row


def sum_shared(array: Any, conn: Connection) -> None:
    conn.send((float(array.sum()), array.segment_name, bool(array.flags.writeable)))


def send_big_results(conn: Connection, count: int, nbytes: int) -> None:
    for i in range(count):
        _codec.send(conn, _codec.encode(np.full(nbytes // 8, float(i))))
    conn.recv()  # wait until told to leave


def interrupt_me_later() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def configure_threshold(threshold: int | None) -> None:
    _connection.configure(threshold=threshold)


_kept: list[np.ndarray] = []


def keep_and_total(array: np.ndarray) -> float:
    """Keep the argument beyond the task (its receive area must then stay untouched)."""
    _kept.append(array)
    return float(array.sum())


def kept_totals() -> list[float]:
    return [float(a.sum()) for a in _kept]


def forget_kept() -> int:
    count = len(_kept)
    _kept.clear()
    return count


def mapping_address(array: Any) -> int:
    """Where this worker mapped a shared array's segment."""
    return int(array._segment.address)


def recent_mappings(array: Any) -> list[str]:
    """The segments this worker keeps mapped after opening ``array``."""
    from fermion.sharing import _mapped

    return list(_mapped._recent)


def is_writable(array: np.ndarray) -> bool:
    return bool(array.flags.writeable)
