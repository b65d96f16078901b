"""fermion: run Python work concurrently without fear.

The public face of the library. Everything users may touch is re-exported here, once;
the modules behind it start with an underscore.
"""

from __future__ import annotations

from fermion.errors import (
    DeadlockError,
    ExtraMissingError,
    FermionError,
    FermionWarning,
    LockOrderError,
    LockOrderWarning,
    RaceWarning,
    RemoteTraceback,
    SerializationError,
    StarvationWarning,
    TaskKilledError,
    TaskTimeoutError,
    WorkerCrashedError,
)

__version__ = "0.1.0"

__all__ = [
    "DeadlockError",
    "ExtraMissingError",
    "FermionError",
    "FermionWarning",
    "LockOrderError",
    "LockOrderWarning",
    "RaceWarning",
    "RemoteTraceback",
    "SerializationError",
    "StarvationWarning",
    "TaskKilledError",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "__version__",
]
