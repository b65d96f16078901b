"""Whether new primitives are created checked.

Checks are decided when a primitive is created: ``fermion.sync.Lock()`` returns the
standard library's own lock while checks are off, and a :class:`CheckedLock` while
they are on. The flag is set by ``fermion.check.enable()``/``disable()``; the first
time it is needed and nobody has set it, the environment variable ``FERMION_CHECK``
decides (``1``, ``true``, ``yes`` or ``on`` turn the checks on through
``fermion.check.enable()``, the one place this layer reaches upward, lazily).
Nothing is read at import time.
"""

from __future__ import annotations

import importlib
import os

__all__ = ["checks_enabled", "set_checks_enabled"]

_enabled: bool | None = None
_TRUE = {"1", "true", "yes", "on"}


def checks_enabled() -> bool:
    """Whether primitives created now are checked."""
    if _enabled is None:
        _read_environment()
    return bool(_enabled)


def set_checks_enabled(value: bool) -> None:
    """Turn checked creation on or off (``fermion.check.enable`` calls this)."""
    global _enabled
    _enabled = bool(value)


def _read_environment() -> None:
    global _enabled
    _enabled = False
    if os.environ.get("FERMION_CHECK", "").strip().lower() in _TRUE:
        importlib.import_module("fermion.check").enable()
