"""The codec of the processes backend: pickling and the out-of-band buffer transport."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading

import numpy as np
import pytest

from fermion.executors._processes import _codec
from fermion.sharing import _connection as _shared_memory


def test_large_buffers_travel_out_of_band_and_arrive_read_only() -> None:
    array = np.arange(250_000, dtype=np.int64)
    message = (lambda x: x + 1, {"array": array, "view": array[::2], "raw": bytearray(b"xy")})
    encoded = _codec.encode(message)
    # Only contiguous arrays go out of band (NumPy copies a strided view in band).
    assert len(encoded.buffers) == 1
    assert memoryview(encoded.buffers[0]).nbytes == array.nbytes
    assert encoded.head.nbytes < array.nbytes  # the 2 MB array is not inside the pickle
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = threading.Thread(target=_codec.send, args=(writer, encoded))  # pipes are small
    sender.start()
    try:
        fn, data = _codec.recv(reader)
    finally:
        sender.join(timeout=30)
        reader.close()
        writer.close()
    assert not sender.is_alive()
    assert fn(1) == 2
    np.testing.assert_array_equal(data["array"], array)
    np.testing.assert_array_equal(data["view"], array[::2])
    # The big array arrives on the caller's shared copy, which other tasks may share:
    # read-only. The in-band buffer is the receiver's own: writable.
    assert not data["array"].flags.writeable and data["raw"] == bytearray(b"xy")
    with pytest.raises(ValueError, match="read-only"):
        data["array"][0] = 1


def test_messages_without_buffers_and_empty_buffers() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    try:
        for obj in [("run", 1, None, [], [((1,), {})]), np.zeros(0), bytearray()]:
            _codec.send(writer, _codec.encode(obj))
            again = _codec.recv(reader)
            if isinstance(obj, np.ndarray):
                assert again.shape == (0,)
            else:
                assert again == obj
    finally:
        reader.close()
        writer.close()


def test_small_plain_messages_take_the_fast_path_and_round_trip() -> None:
    plain = ("run", 1, b"fn", [3, 4], 2, [(1, 2.5, None, True, 1j, "s")], {"k": (1,)})
    encoded = _codec.encode(plain)
    assert _codec._is_plain(plain) and encoded.buffers == []
    assert _codec.decode(encoded.head, []) == plain
    # Anything else, or too many objects, takes cloudpickle's path (same result).
    assert not _codec._is_plain((1, bytearray(b"x")))
    assert not _codec._is_plain((1, lambda: 1))
    assert not _codec._is_plain(list(range(_codec._PLAIN_LIMIT + 1)))
    assert _codec.decode(_codec.encode(list(range(1000))).head, []) == list(range(1000))
    assert _codec.decode(_codec.encode(("x", (lambda: 7,))).head, [])[1][0]() == 7


def test_the_fast_path_still_sweeps_dead_workers_periodically(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(_shared_memory, "DEAD_WORKER_SWEEP_INTERVAL", 0.0)
    monkeypatch.setattr(_shared_memory._get_state(), "next_dead_worker_sweep", 0.0)
    monkeypatch.setattr(_shared_memory, "sweep_dead_workers", lambda: calls.append(1) or [])
    for _ in range(3):
        _codec.encode(("run", 1, None, [], 0, [1]))
    assert len(calls) == 3


def test_a_worker_starts_without_numpy_or_psutil() -> None:
    code = (
        "import sys, fermion.executors._processes._worker\n"
        "print(sorted(m for m in ('numpy', 'psutil') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
