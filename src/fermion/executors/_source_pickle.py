"""Pickling a task's function so that its remote traceback names its own source.

cloudpickle pickles a function of ``__main__``, of a notebook cell or a closure by
value, with its code object; and it replaces the code's file name with
``"<dynamic-code>"`` (to make the pickle the same wherever the function was defined).
A traceback raised in the worker then reads ``File "<dynamic-code>", line 3`` with no
source line. ``dumps`` keeps the file name, and when the source is not a file the
worker can read (a notebook cell, the interactive prompt: the caller's ``linecache``
holds their lines), it sends those lines along: unpickling the code puts them into the
worker's ``linecache``, where ``traceback`` finds them. A function of an ordinary
module is pickled by reference, as before; its traceback reads its file in the worker.

The pickle of a given function is still the same each time (the pool caches it per
function, and keys its cache of the worker's functions by those bytes).
"""

from __future__ import annotations

import io
import linecache
import os
import pickle
import types
from collections import ChainMap
from collections.abc import Callable
from typing import Any

import cloudpickle

__all__ = ["dumps"]

PROTOCOL = 5

try:  # cloudpickle >= 3.0
    from cloudpickle.cloudpickle import _code_reduce as _cloudpickle_code_reduce
except ImportError:  # pragma: no cover - depends on the installed cloudpickle
    _cloudpickle_code_reduce = None

#: What cloudpickle writes in place of a code object's file name.
_ANONYMOUS_FILE = "<dynamic-code>"


def _source_lines(filename: str) -> list[str] | None:
    """The caller's lines of ``filename`` when the worker may not read them itself."""
    if os.path.isfile(filename):
        return None
    lines = linecache.getlines(filename)
    return lines or None


def _reduce_code(code: types.CodeType) -> tuple[Any, ...]:
    constructor, args = _cloudpickle_code_reduce(code)
    args = list(args)
    try:
        # Every argument before co_filename is a number, bytes or a tuple: the first
        # argument equal to the placeholder is the file name.
        where = args.index(_ANONYMOUS_FILE)
    except ValueError:  # this cloudpickle keeps file names itself
        return (constructor, tuple(args))
    args[where] = code.co_filename
    lines = _source_lines(code.co_filename)
    if lines is None:
        return (constructor, tuple(args))
    return (_code_with_source, (code.co_filename, lines, constructor, tuple(args)))


def _code_with_source(
    filename: str, lines: list[str], constructor: Callable[..., Any], args: tuple[Any, ...]
) -> Any:
    """In the worker: remember the source lines, then rebuild the code object."""
    # No modification time: linecache.checkcache keeps an entry without one.
    linecache.cache[filename] = (sum(len(line) for line in lines), None, list(lines), filename)
    return constructor(*args)


class _SourcePickler(cloudpickle.Pickler):
    dispatch_table = ChainMap(
        {types.CodeType: _reduce_code} if _cloudpickle_code_reduce is not None else {},
        cloudpickle.Pickler.dispatch_table,
    )


def dumps(obj: Any) -> bytes:
    """``cloudpickle.dumps(obj)``, except that code pickled by value keeps its file name
    and, where the worker cannot read it, its source lines (see the module doc)."""
    out = io.BytesIO()
    _SourcePickler(out, protocol=PROTOCOL).dump(obj)
    return out.getvalue()


def loads(data: bytes) -> Any:
    return pickle.loads(data)
