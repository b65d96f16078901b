"""Tests of CPython's suite rewritten to assert fermion's documented behaviour where it
is deliberately different. ``ADAPTED`` maps a test id (fnmatch pattern) to the reason
and the body that replaces the suite's; each is listed in docs/executor.md."""

from __future__ import annotations

import time
import unittest
from collections.abc import Callable
from typing import Any

import fermion.errors

__all__ = ["ADAPTED"]


def _max_workers_negative(self: Any) -> None:
    # The suite's message names its parameter (max_workers); fermion's names its own.
    for number in (0, -1):
        with self.assertRaisesRegex(ValueError, "workers must be a positive integer or None"):
            self.executor_type(max_workers=number)


def _cancel_futures(self: Any) -> None:
    # The standard pool has queued max_workers + 1 calls to its workers before shutdown
    # cancels the rest, so some always run; fermion hands a worker a task only once the
    # worker is up, so all may be cancelled. What holds on both: many are cancelled, and
    # every other one finished without error.
    fs = [self.executor.submit(time.sleep, 0.1) for _ in range(50)]
    self.executor.shutdown(cancel_futures=True)
    cancelled = [f for f in fs if f.cancelled()]
    self.assertGreater(len(cancelled), 20)
    for f in fs:
        if not f.cancelled():
            self.assertTrue(f.done())
            self.assertIsNone(f.exception())


def _raise_123() -> None:
    raise RuntimeError(123)  # some comment


def _traceback(self: Any) -> None:
    # fermion attaches the worker's traceback as fermion.errors.RemoteTraceback (public),
    # not as the standard library's private _RemoteTraceback.
    future = self.executor.submit(_raise_123)
    with self.assertRaises(RuntimeError) as cm:
        future.result()
    self.assertEqual(cm.exception.args, (123,))
    cause = cm.exception.__cause__
    self.assertIsInstance(cause, fermion.errors.RemoteTraceback)
    self.assertIn("raise RuntimeError(123)  # some comment", str(cause))


def _thread_names(prefix: str | None, pattern: str) -> Callable[[Any], None]:
    def test(self: Any) -> None:
        # fermion names its threads "<prefix>-<n>" (default prefix "fermion-threads"),
        # counting from 1 and on through the threads that replace stuck ones.
        options = {} if prefix is None else {"thread_name_prefix": prefix}
        executor = self.executor_type(max_workers=5, **options)
        executor.map(abs, range(-5, 5))
        threads = executor._threads
        del executor
        for thread in threads:
            self.assertRegex(thread.name, pattern)
            thread.join()

    return test


def _map_timeout(self: Any) -> None:
    # The suite's map with chunksize=1: fermion's automatic chunking may hold a result
    # back with a slower item of its chunk (documented on Executor.map).
    results = []
    with self.assertRaises(TimeoutError):
        for value in self.executor.map(time.sleep, [0, 0, 6], timeout=5, chunksize=1):
            results.append(value)
    self.assertEqual([None, None], results)


ADAPTED: dict[str, tuple[str, Callable[[unittest.TestCase], None]]] = {
    "*PoolExecutorTest.test_map_timeout": (
        "with automatic chunking a result may wait for its chunk: the test maps with chunksize=1",
        _map_timeout,
    ),
    "*.test_max_workers_negative": (
        "the ValueError names fermion's parameter, workers, not max_workers",
        _max_workers_negative,
    ),
    "ProcessPool*ProcessPoolShutdownTest.test_cancel_futures": (
        "a worker takes a task only once it is up: all 50 may be cancelled (the standard "
        "pool queues max_workers + 1 calls ahead, so some always run)",
        _cancel_futures,
    ),
    "ThreadPoolShutdownTest.test_thread_names_assigned": (
        "threads are named <prefix>-<n>, not <prefix>_<n>",
        _thread_names("SpecialPool", r"^SpecialPool-\d+$"),
    ),
    "ThreadPoolShutdownTest.test_thread_names_default": (
        "threads are named fermion-threads-<n> by default",
        _thread_names(None, r"^fermion-threads-\d+$"),
    ),
    "ProcessPool*ProcessPoolExecutorTest.test_traceback": (
        "the worker's traceback is attached as fermion.errors.RemoteTraceback",
        _traceback,
    ),
}
