"""fermion: run Python work concurrently without fear.

The public face of the library. Everything users may touch is re-exported here, once;
the modules behind it start with an underscore.
"""

from __future__ import annotations

from fermion import check, sync
from fermion._stress import StressResult, stress, stress_script
from fermion.errors import (
    DaskClusterError,
    DaskWorkerLostError,
    DeadlockError,
    ExtraMissingError,
    FermionError,
    FermionWarning,
    InitializerError,
    LockOrderError,
    LockOrderWarning,
    RaceSessionError,
    RaceWarning,
    RemoteError,
    RemoteTraceback,
    SerializationError,
    StarvationWarning,
    TaskKilledError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from fermion.executors import Executor, map
from fermion.measure import Advice, BenchResult, GilLoad, Profile, advise, gil_load, profile
from fermion.sharing import SharedArray, SharedCounter, SharedValue, shared_array

__version__ = "0.1.0"

__all__ = [
    "Advice",
    "BenchResult",
    "DaskClusterError",
    "DaskWorkerLostError",
    "DeadlockError",
    "Executor",
    "ExtraMissingError",
    "FermionError",
    "FermionWarning",
    "GilLoad",
    "InitializerError",
    "LockOrderError",
    "LockOrderWarning",
    "Profile",
    "RaceSessionError",
    "RaceWarning",
    "RemoteError",
    "RemoteTraceback",
    "SerializationError",
    "SharedArray",
    "SharedCounter",
    "SharedValue",
    "StarvationWarning",
    "StressResult",
    "TaskKilledError",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "__version__",
    "advise",
    "check",
    "gil_load",
    "map",
    "profile",
    "shared_array",
    "stress",
    "stress_script",
    "sync",
]
