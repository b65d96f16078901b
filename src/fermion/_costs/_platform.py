"""The one place that asks the platform what this process may use: cores and the GIL."""

from __future__ import annotations

import os
import sys

__all__ = ["cpu_count", "free_threaded", "gil_enabled"]


def gil_enabled() -> bool:
    """True when this interpreter runs with a GIL (always before 3.13; on a free-threaded
    3.13t build only when an extension module switched it back on)."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


def free_threaded() -> bool:
    """True on a free-threaded build running without the GIL (3.13t)."""
    return not gil_enabled()


def cpu_count() -> int:
    """Cores this process may run on (its affinity where the OS tells it)."""
    process_cpu_count = getattr(os, "process_cpu_count", None)  # 3.13+
    if process_cpu_count is not None:
        count = process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # macOS, Windows: psutil knows the affinity where the OS has one
        count = None
        try:
            import psutil

            count = len(psutil.Process().cpu_affinity() or ())
        except (ImportError, AttributeError, OSError):
            pass
        count = count or os.cpu_count()
    return max(1, count or 1)
