"""Backends by name, imported only when asked for.

``Executor(backend="threads")`` looks the name up here. The heavy backends (processes,
dask) live in modules that import their dependencies, so nothing is imported until a
user asks for that backend.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from fermion.executors._base import Backend

__all__ = ["BACKENDS", "backend_names", "check_options", "load_backend"]

#: name -> "module:ClassName" of a Backend subclass.
BACKENDS: dict[str, str] = {
    "auto": "fermion.executors._auto:AutoBackend",
    "serial": "fermion.executors._serial:SerialBackend",
    "threads": "fermion.executors._threads:ThreadBackend",
    "processes": "fermion.executors._processes:ProcessBackend",
    "dask": "fermion.executors._dask:DaskBackend",
}


def backend_names() -> list[str]:
    """The names ``Executor(backend=...)`` accepts, sorted."""
    return sorted(BACKENDS)


def load_backend(name: str) -> type[Backend]:
    """The Backend class registered as ``name``; ValueError listing the valid names."""
    if not isinstance(name, str):
        raise TypeError(
            f"backend must be a name such as 'threads' or a Backend subclass, "
            f"got {name!r} ({type(name).__name__})"
        )
    try:
        target = BACKENDS[name]
    except KeyError:
        valid = ", ".join(repr(n) for n in backend_names())
        raise ValueError(f"unknown backend {name!r}; choose one of {valid}") from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"{target} (registered as backend {name!r}) is not a Backend subclass")
    return cls


def check_options(cls: type[Backend], name: str, options: dict[str, Any]) -> None:
    """Raise TypeError naming each option ``cls`` does not take, and the ones it does.

    Backends raise TypeError themselves too; this gives one clear message for all.
    A constructor that takes ``**kwargs`` is left to check its own options.
    """
    if not options:
        return
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # no introspectable signature
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    known = [
        p.name
        for p in parameters.values()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and p.name != "workers"
    ]
    unknown = [option for option in options if option not in known]
    if unknown:
        valid = ", ".join(known) if known else "none"
        raise TypeError(
            f"unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(o) for o in unknown)} for backend {name!r}; "
            f"its options are: {valid}"
        )
