"""How a worker process ended, in words, and what workers dying before they are ready
tell about the pool.

A worker is "ready" once it has loaded what it needs and said so. One that dies before
that is replaced, but a pool whose workers can never start must stop trying and say
why. ``StartFailures`` decides, from the exit statuses alone (a pure object: fed each
death and each ready worker, it answers with the error to break the pool with, or
None). A worker that exits with a status, or crashes on a signal it raises itself
(SIGSEGV and the like), failed on its own: a few in a row mean it cannot start. One
killed by a signal from outside (SIGKILL, SIGTERM: a user, a supervisor, the
out-of-memory killer) says nothing about the workers themselves, so those are replaced
for longer before the pool gives up.
"""

from __future__ import annotations

import collections
import signal

__all__ = [
    "OWN_FAILURES_TO_BREAK",
    "START_FAILURES_TO_BREAK",
    "StartFailures",
    "describe_exit",
    "exit_hint",
    "signal_name",
]

#: Consecutive deaths before ready by the worker's own hand that break the pool.
OWN_FAILURES_TO_BREAK = 3
#: Consecutive deaths before ready of any kind (killed from outside too) that break it.
START_FAILURES_TO_BREAK = 12

#: Signals a process raises on itself when native code fails.
_CRASH_SIGNALS = frozenset(
    {"SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL", "SIGSYS", "SIGTRAP"}
)


def signal_name(exitcode: int | None) -> str | None:
    """``"SIGKILL"`` for a process ended by a signal (negative ``exitcode``), else None."""
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def describe_exit(exitcode: int | None) -> str:
    """``"killed by SIGKILL"``, ``"exit code 1"`` or ``"exit status unknown"``."""
    name = signal_name(exitcode)
    if name is not None:
        return f"killed by {name}"
    if exitcode is None:
        return "exit status unknown"
    return f"exit code {exitcode}"


def exit_hint(exitcode: int | None) -> str:
    """A sentence on the likely cause of a worker's death while it ran a task."""
    name = signal_name(exitcode)
    if name == "SIGKILL":
        return (
            " SIGKILL often means the system ran out of memory and the OOM killer chose "
            "this worker: lower the memory a task needs, or use fewer workers."
        )
    if name in ("SIGSEGV", "SIGBUS", "SIGABRT"):
        return " This usually comes from native code (a C extension or ctypes)."
    return ""


def _own_failure(exitcode: int | None) -> bool:
    """Whether the worker ended itself (a status, or a crash signal), not killed."""
    name = signal_name(exitcode)
    return name is None or name in _CRASH_SIGNALS


class StartFailures:
    """Counts the workers that die before they are ready, in a row (see module doc).

    ``imports_main``: workers start by importing the caller's main module (spawn and
    forkserver), so that is what a worker exiting before it is ready most likely failed
    at; under fork nothing is imported."""

    def __init__(self, *, imports_main: bool) -> None:
        self._imports_main = imports_main
        self._seen: list[int | None] = []  # the exit statuses since the last ready worker

    def worker_ready(self) -> None:
        """A worker started: the workers can start, whatever happened before."""
        self._seen.clear()

    def worker_died(self, exitcode: int | None) -> str | None:
        """A worker died before it was ready: the message to break the pool with, or
        None to replace it."""
        self._seen.append(exitcode)
        own = sum(1 for code in self._seen if _own_failure(code))
        if own < OWN_FAILURES_TO_BREAK and len(self._seen) < START_FAILURES_TO_BREAK:
            return None
        counts = collections.Counter(describe_exit(code) for code in self._seen)
        seen = ", ".join(
            f"{what} {count} time{'s' if count > 1 else ''}" for what, count in counts.items()
        )
        return (
            f"worker processes died before they were ready, {len(self._seen)} times in a "
            f"row ({seen}); the process pool cannot run tasks.{self._hint()}"
        )

    def _hint(self) -> str:
        names = {signal_name(code) for code in self._seen}
        hints = []
        if None in names:
            if self._imports_main:
                hints.append(
                    " A worker that exits before it is ready failed while starting, before "
                    "any task: most often the main module, which each new worker process "
                    "imports, raised or exited (put the script's work under "
                    "`if __name__ == '__main__':`); the traceback is on the workers' "
                    "standard error."
                )
            else:
                hints.append(
                    " A worker that exits before it is ready failed while starting, before "
                    "any task; its traceback, if any, is on the workers' standard error."
                )
        crashes = sorted(n for n in names if n is not None and n in _CRASH_SIGNALS)
        if crashes:
            hints.append(
                f" {' and '.join(crashes)} while starting comes from native code, most "
                "likely a C extension that the main module or the initializer loads."
            )
        kills = sorted(n for n in names if n is not None and n not in _CRASH_SIGNALS)
        if kills:
            hints.append(
                f" {' and '.join(kills)}: something outside the pool kills its workers as "
                "they start (SIGKILL is also what the out-of-memory killer sends: lower the "
                "memory each worker needs, or use fewer workers)."
            )
        return "".join(hints)
