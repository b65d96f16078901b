"""The pickled form of each function the pool sends, pickled once instead of per task.

Pickling a function with cloudpickle costs from microseconds (an importable module-level
function: pickled by reference) to milliseconds (a closure or a function of ``__main__``:
pickled by value, with its code, defaults, closure and the globals it uses). A ``map``
sends the same function object with every chunk, and ``submit`` in a loop sends it with
every task, so the pool keeps the bytes per function object.

The cached bytes must be what cloudpickle would produce now. A function pickled by
reference always pickles the same way. One pickled by value pickles its state, which
can change while the object stays the same (a closure's cell rebound, a global of
``__main__`` reassigned, defaults replaced), so its cache entry also holds that state,
and the entry is used only while each piece is still the very same object. Only state
made of values that cannot change in place (numbers, strings, bytes, None, modules,
functions and classes pickled by reference, tuples of those) is cached; a function
whose state holds anything else (a list, a dict, an array, another by-value function)
is pickled again on every send, which is always correct.

Functions are pickled by ``_source_pickle.dumps``: cloudpickle, keeping the file name and
source lines of code pickled by value, for the worker's tracebacks.

One instance belongs to the pool's thread; it takes no locks.
"""

from __future__ import annotations

import sys
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fermion.executors import _source_pickle

__all__ = ["PickledFunctions"]

#: How many function objects keep their pickled bytes.
CACHED_FUNCTIONS = 256

try:  # cloudpickle >= 2.2; without it every by-value rule below still holds
    from cloudpickle.cloudpickle import _should_pickle_by_reference as _by_reference
except ImportError:  # pragma: no cover - depends on the installed cloudpickle

    def _by_reference(obj: Any, name: str | None = None) -> bool:
        return False


_ATOMIC = frozenset((int, float, complex, str, bytes, bool, type(None)))
#: Stands for a global name the function uses that its module does not define (yet).
_UNDEFINED = object()


class _Entry:
    __slots__ = ("by_reference", "pickled", "state", "target")

    def __init__(
        self,
        target: weakref.ref[Any],
        by_reference: bool,
        state: tuple[Any, ...],
        pickled: bytes,
    ) -> None:
        self.target = target
        self.by_reference = by_reference
        self.state = state
        self.pickled = pickled


class PickledFunctions:
    """``dumps(fn)``: the cloudpickled bytes of ``fn``, from a cache when still valid."""

    def __init__(self, size: int = CACHED_FUNCTIONS) -> None:
        self._size = size
        self._entries: OrderedDict[int, _Entry] = OrderedDict()

    def dumps(self, fn: Callable[..., Any]) -> bytes:
        """Raises what the pickler raises when ``fn`` cannot be pickled."""
        key = id(fn)
        entry = self._entries.get(key)
        if entry is not None and entry.target() is fn:
            if entry.by_reference:
                self._entries.move_to_end(key)
                return entry.pickled
            state = _state(fn)
            if state is not None and _same(state, entry.state):
                self._entries.move_to_end(key)
                return entry.pickled
        pickled = _source_pickle.dumps(fn)
        self._remember(key, fn, pickled)
        return pickled

    def _remember(self, key: int, fn: Callable[..., Any], pickled: bytes) -> None:
        self._entries.pop(key, None)
        if not isinstance(fn, types.FunctionType):
            return  # builtins are cheap to pickle; instances and partials hold state
        by_reference = _by_reference(fn)
        state: tuple[Any, ...] | None = ()
        if not by_reference:
            state = _state(fn)
            if state is None:
                return
        # A weak reference: the cache must not keep a user's function (and what its
        # closure holds) alive; a dead one's id may be reused, hence the check in dumps.
        self._entries[key] = _Entry(weakref.ref(fn), by_reference, state or (), pickled)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


def _state(fn: Any) -> tuple[Any, ...] | None:
    """Everything the by-value pickle of ``fn`` depends on, or None when some of it
    could change without becoming another object (then ``fn`` is not cached)."""
    if not isinstance(fn, types.FunctionType):
        return None
    if fn.__dict__:
        return None
    code = fn.__code__
    state: list[Any] = [
        code,
        fn.__name__,
        fn.__qualname__,
        fn.__module__,
        fn.__doc__,
    ]
    for value in fn.__annotations__.values():
        if not _stable(value):
            return None
        state.append(value)
    for values in (fn.__defaults__ or (), (fn.__kwdefaults__ or {}).values()):
        for value in values:
            if not _stable(value):
                return None
            state.append(value)
    for cell in fn.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            value = _UNDEFINED
        if value is not _UNDEFINED and not _stable(value):
            return None
        state.append(value)
    uses_module = False
    module_globals = fn.__globals__
    for name in _global_names(code):
        value = module_globals.get(name, _UNDEFINED)
        if value is not _UNDEFINED:
            if not _stable(value):
                return None
            uses_module = uses_module or isinstance(value, types.ModuleType)
        state.append(value)
    if uses_module:
        # The pickle lists the submodules imported so far, so that the worker imports
        # them too: a module imported since may belong in it.
        state.append(len(sys.modules))
    return tuple(state)


def _global_names(code: types.CodeType) -> list[str]:
    """The names ``code`` and the code nested in it may look up as globals (what
    cloudpickle looks for in the function's module)."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_global_names(const))
    return names


def _stable(value: Any) -> bool:
    """Whether ``value`` pickles the same for as long as it is the same object."""
    kind = type(value)
    if kind in _ATOMIC or kind is types.ModuleType:  # exact types: a subclass may hold more
        return True
    if kind is types.BuiltinFunctionType:  # ``len`` yes; ``some_list.append`` no
        owner = value.__self__
        return owner is None or type(owner) is types.ModuleType
    if kind is tuple or kind is frozenset:
        return all(_stable(item) for item in value)
    if isinstance(value, type | types.FunctionType):
        return _by_reference(value)
    return False


def _same(state: tuple[Any, ...], cached: tuple[Any, ...]) -> bool:
    if len(state) != len(cached):
        return False
    return all(a is b or _equal_atoms(a, b) for a, b in zip(state, cached, strict=True))


def _equal_atoms(a: Any, b: Any) -> bool:
    """Equal ints, strings and bytes pickle the same even as different objects
    (floats do not: 0.0 and -0.0 are equal)."""
    kind = type(a)
    return kind is type(b) and kind in (int, str, bytes) and a == b
