"""fermion: run Python work concurrently without fear.

The public face of the library. Everything users may touch is re-exported here, once;
the modules behind it start with an underscore.

Importing ``fermion`` is light: every worker process imports it at start-up, so only
the errors are imported now; every other name is imported on first use (PEP 562's
module ``__getattr__``), from the module that ``_LAZY`` names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    LockReleaseWarning,
    RaceSessionError,
    RaceWarning,
    RemoteError,
    RemoteTraceback,
    SerializationError,
    StarvationWarning,
    TaskKilledError,
    TaskTimeoutError,
    WorkerCrashedError,
    WorkerMemoryError,
)

if TYPE_CHECKING:
    from fermion import check, sync
    from fermion.executors import Executor, map
    from fermion.measure import (
        Advice,
        BenchResult,
        GilLoad,
        MachineLoad,
        Profile,
        advise,
        gil_load,
        machine_load,
        profile,
    )
    from fermion.sharing import SharedArray, SharedCounter, SharedValue, shared_array
    from fermion.teach._stress import StressResult, stress, stress_script

#: Each name imported on first use, and the module it comes from (for a subpackage
#: itself, the subpackage).
_LAZY: dict[str, str] = {
    "check": "fermion.check",
    "sync": "fermion.sync",
    "StressResult": "fermion.teach._stress",
    "stress": "fermion.teach._stress",
    "stress_script": "fermion.teach._stress",
    "Executor": "fermion.executors",
    "map": "fermion.executors",
    "Advice": "fermion.measure",
    "BenchResult": "fermion.measure",
    "GilLoad": "fermion.measure",
    "MachineLoad": "fermion.measure",
    "Profile": "fermion.measure",
    "advise": "fermion.measure",
    "gil_load": "fermion.measure",
    "machine_load": "fermion.measure",
    "profile": "fermion.measure",
    "SharedArray": "fermion.sharing",
    "SharedCounter": "fermion.sharing",
    "SharedValue": "fermion.sharing",
    "shared_array": "fermion.sharing",
}

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
    "LockReleaseWarning",
    "MachineLoad",
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
    "WorkerMemoryError",
    "__version__",
    "advise",
    "check",
    "gil_load",
    "machine_load",
    "map",
    "profile",
    "shared_array",
    "stress",
    "stress_script",
    "sync",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use, then keep it as a plain attribute."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'fermion' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name == f"fermion.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
