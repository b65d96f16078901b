"""NumPy arrays in shared memory that travel between processes by name.

``shared_array(shape, dtype)`` returns a ``SharedArray``: an ordinary ``numpy.ndarray``
(a subclass) whose memory is a shared-memory segment. Pickling it - which is how it
reaches process workers - sends the segment's name, shape, dtype, strides and offset,
never the content, so a worker maps the same memory and its writes are seen by the
caller without any copy. Slices and other views of a shared array stay shared.

The creating process owns the memory: it is freed when the creator's last view is
garbage-collected and always when the creator exits. Receivers' mappings stay valid
after that (POSIX keeps mapped memory alive), but the name is gone, so keep the
array alive while workers still have to open it; an Executor does that for the
arguments of a task until the task is done.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from fermion.sharing._mapped import MappedSegment
from fermion.sharing._ownership import owned_arrays_by_content, owned_by_content

__all__ = ["SharedArray", "owned_arrays_by_content", "shared_array", "shared_copy"]


def _normalise_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int | np.integer):
        shape = (shape,)
    try:
        dims = tuple(operator.index(n) for n in shape)
    except TypeError:
        raise TypeError(
            f"shared_array shape must be an int or a sequence of ints, not {shape!r}"
        ) from None
    if any(n < 0 for n in dims):
        raise ValueError(f"shared_array shape {dims} has a negative dimension")
    return dims


def shared_array(shape: int | tuple[int, ...], dtype: DTypeLike = np.float64) -> SharedArray:
    """A zero-filled array in shared memory that process workers can write into.

    Pass it to workers like any argument: it travels by name (under the forkserver
    and spawn start methods alike), the workers' writes land in the caller's memory,
    and nothing is copied. Freed when the creating process drops its last view of
    it, and at the latest when that process exits.

    >>> out = fermion.shared_array((8, 1000))
    >>> with fermion.Executor("processes") as ex:
    ...     list(ex.map(fill_row, [out] * 8, range(8)))  # fill_row writes out[i]
    """
    dims = _normalise_shape(shape)
    dt = np.dtype(dtype)
    if dt.hasobject:
        raise TypeError(
            f"shared_array cannot hold dtype {dt} (Python objects live in one process); "
            "use a numeric, bool, string or structured dtype"
        )
    nbytes = math.prod(dims) * dt.itemsize
    segment = MappedSegment.create(max(nbytes, 1))
    array = np.ndarray.__new__(SharedArray, dims, dt, buffer=segment.mmap, offset=0)
    array._segment = segment
    return array


def shared_copy(array: ArrayLike) -> SharedArray:
    """A shared-memory copy of ``array`` (C order), to send to workers without copies."""
    source = np.asarray(array)
    out = shared_array(source.shape, source.dtype)
    out[...] = source
    return out


try:  # NumPy >= 2.0
    from numpy.lib.array_utils import byte_bounds as _byte_bounds
except ImportError:  # pragma: no cover - NumPy 1.26
    _byte_bounds = np.byte_bounds  # type: ignore[attr-defined]


class SharedArray(np.ndarray):
    """A ``numpy.ndarray`` whose memory is a shared-memory segment; pickles by name.

    Operations that make a new array (``a + 1``, ``a.copy()``) give ordinary process
    memory: those results pickle by content like any array (``is_shared`` is False).
    """

    _segment: MappedSegment | None

    def __array_finalize__(self, obj: Any) -> None:
        self._segment = getattr(obj, "_segment", None)

    @property
    def segment_name(self) -> str | None:
        """The name of the shared-memory segment behind this array, if it is shared."""
        segment = self._segment
        return segment.name if segment is not None and self.is_shared else None

    @property
    def is_shared(self) -> bool:
        """Whether this array's memory lies in its shared-memory segment."""
        segment = self._segment
        if segment is None:
            return False
        low, high = _byte_bounds(self)
        return segment.contains(low, high - low)

    def __reduce_ex__(self, protocol: Any) -> Any:
        segment = self._segment
        if (
            segment is not None
            and self.is_shared
            and not (segment.owner and owned_by_content.get())
        ):
            start = int(self.__array_interface__["data"][0])
            return (
                _open_shared_array,
                (
                    segment.name,
                    self.shape,
                    self.dtype,
                    self.strides,
                    start - segment.address,
                    bool(self.flags.writeable),
                ),
            )
        return np.asarray(self).__reduce_ex__(protocol)

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)

    def __repr__(self) -> str:
        return super().__repr__().replace("SharedArray(", "shared_array(", 1)


def _open_shared_array(
    name: str,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    strides: tuple[int, ...],
    offset: int,
    writable: bool,
) -> SharedArray:
    segment = MappedSegment.open(name)
    array = np.ndarray.__new__(
        SharedArray, shape, dtype, buffer=segment.mmap, offset=offset, strides=strides
    )
    array._segment = segment
    if not writable:
        array.flags.writeable = False
    return array
