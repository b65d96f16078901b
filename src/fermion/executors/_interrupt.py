"""Best-effort interruption of another thread (CPython's PyThreadState_SetAsyncExc).

The exception is raised in the target thread the next time it runs Python bytecode.
A thread blocked in C code (``time.sleep``, a socket read, a NumPy kernel, a lock
without timeout) is interrupted only when that call returns; code that catches
``BaseException`` can swallow the interrupt. That is why the threads backend fails
the caller's future first and interrupts the thread second.
"""

from __future__ import annotations

import ctypes

__all__ = ["TaskInterrupt", "clear_pending_interrupt", "interrupt_thread"]


class TaskInterrupt(BaseException):
    """Raised inside a worker thread whose task timed out or was killed.

    A BaseException, so that ``except Exception`` in user code lets it through.
    """


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> int:
    api = getattr(ctypes, "pythonapi", None)
    if api is None or not hasattr(api, "PyThreadState_SetAsyncExc"):  # not CPython
        return 0
    target = ctypes.py_object(exc) if exc is not None else None  # None is C NULL: clear
    return int(api.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target))


def interrupt_thread(thread_id: int) -> bool:
    """Ask the thread ``thread_id`` to raise TaskInterrupt; False if it cannot be done."""
    return _set_async_exc(thread_id, TaskInterrupt) == 1


def clear_pending_interrupt(thread_id: int) -> None:
    """Drop an interrupt that was sent to ``thread_id`` but not raised yet."""
    _set_async_exc(thread_id, None)
