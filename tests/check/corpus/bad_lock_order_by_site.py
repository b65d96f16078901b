# ruff: noqa: SIM117 - the nesting is the point
"""Inversion between two *kinds* of lock (per allocation site), on different instances."""

import threading


class Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()


class Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()


def refresh(cache: Cache, store: Store) -> None:
    with cache.lock:  # LOCK-ORDER-HERE
        with store.lock:  # LOCK-ORDER-HERE
            pass


def flush(cache: Cache, store: Store) -> None:
    with store.lock:  # LOCK-ORDER-HERE
        with cache.lock:  # LOCK-ORDER-HERE
            pass


refresh(Cache(), Store())
flush(Cache(), Store())
