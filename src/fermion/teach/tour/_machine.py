"""What the tour says about the machine it runs on."""

from __future__ import annotations

import platform

from fermion._costs._platform import cpu_count, free_threaded

__all__ = ["cpu_count", "describe", "free_threaded"]


def describe() -> str:
    """One line: Python version and build, operating system, cores."""
    build = "free-threaded, GIL off" if free_threaded() else "with the GIL"
    return (
        f"Python {platform.python_version()} ({build}) on {platform.system()} "
        f"{platform.machine()}, {cpu_count()} cores"
    )
