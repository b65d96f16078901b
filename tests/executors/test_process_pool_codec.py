"""The codec of the processes backend: pickling and the out-of-band buffer transport."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np

from fermion.executors._processes import _codec


def test_large_buffers_travel_out_of_band_and_arrive_writable() -> None:
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
    assert data["array"].flags.writeable and data["raw"] == bytearray(b"xy")


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
