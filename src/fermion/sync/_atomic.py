"""Atomic integers and references: compare-and-set without writing a lock.

Each operation is one critical section on a private lock, so it is atomic on every
interpreter, free-threaded 3.13t included (where ``x += 1`` on a shared attribute
loses updates). Reads of a single reference are atomic anyway and take no lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["AtomicInt", "AtomicRef"]

T = TypeVar("T")
_allocate_lock = threading._allocate_lock  # type: ignore[attr-defined]


class AtomicInt:
    """An integer whose updates are atomic: ``add_and_get``, ``compare_and_set``..."""

    __slots__ = ("_lock", "_value")

    def __init__(self, value: int = 0) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"AtomicInt needs an int, got {type(value).__name__}")
        self._value = value
        self._lock = _allocate_lock()

    def get(self) -> int:
        """The current value."""
        return self._value

    def set(self, value: int) -> None:
        """Replace the value."""
        with self._lock:
            self._value = value

    def get_and_set(self, value: int) -> int:
        """Replace the value and return the previous one."""
        with self._lock:
            old = self._value
            self._value = value
            return old

    def compare_and_set(self, expected: int, value: int) -> bool:
        """Set to *value* if the value equals *expected*; say whether it did."""
        with self._lock:
            if self._value == expected:
                self._value = value
                return True
            return False

    def add_and_get(self, delta: int) -> int:
        """Add *delta* and return the new value."""
        with self._lock:
            self._value += delta
            return self._value

    def get_and_add(self, delta: int) -> int:
        """Add *delta* and return the previous value."""
        with self._lock:
            old = self._value
            self._value = old + delta
            return old

    def increment_and_get(self) -> int:
        """Add one and return the new value."""
        return self.add_and_get(1)

    def decrement_and_get(self) -> int:
        """Subtract one and return the new value."""
        return self.add_and_get(-1)

    def update_and_get(self, function: Callable[[int], int]) -> int:
        """Replace the value by ``function(value)`` atomically; return the new value."""
        with self._lock:
            self._value = function(self._value)
            return self._value

    def __int__(self) -> int:
        return self._value

    def __index__(self) -> int:
        return self._value

    def __repr__(self) -> str:
        return f"AtomicInt({self._value})"


class AtomicRef(Generic[T]):
    """A reference whose updates are atomic; ``compare_and_set`` compares identity."""

    __slots__ = ("_lock", "_value")

    def __init__(self, value: T) -> None:
        self._value = value
        self._lock = _allocate_lock()

    def get(self) -> T:
        """The current referent."""
        return self._value

    def set(self, value: T) -> None:
        """Replace the referent."""
        with self._lock:
            self._value = value

    def get_and_set(self, value: T) -> T:
        """Replace the referent and return the previous one."""
        with self._lock:
            old = self._value
            self._value = value
            return old

    def compare_and_set(self, expected: T, value: T) -> bool:
        """Set to *value* if the referent *is* *expected*; say whether it did."""
        with self._lock:
            if self._value is expected:
                self._value = value
                return True
            return False

    def update_and_get(self, function: Callable[[T], T]) -> T:
        """Replace the referent by ``function(referent)`` atomically; return it."""
        with self._lock:
            self._value = function(self._value)
            return self._value

    def __repr__(self) -> str:
        return f"AtomicRef({self._value!r})"
