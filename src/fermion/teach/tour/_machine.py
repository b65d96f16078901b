"""What the tour says about the machine it runs on."""

from __future__ import annotations

import os
import platform
import sys
import sysconfig

__all__ = ["cpu_count", "describe", "free_threaded"]


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_threaded() -> bool:
    """Whether Python threads run in parallel here (a free-threaded build with the GIL off)."""
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return False
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return not (is_enabled() if is_enabled is not None else True)


def describe() -> str:
    """One line: Python version and build, operating system, cores."""
    build = "free-threaded, GIL off" if free_threaded() else "with the GIL"
    return (
        f"Python {platform.python_version()} ({build}) on {platform.system()} "
        f"{platform.machine()}, {cpu_count()} cores"
    )
