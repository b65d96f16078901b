"""Tests of CPython's suite rewritten to assert fermion's documented behaviour where it
is deliberately different. ``ADAPTED`` maps a test id (fnmatch pattern) to the reason
and the body that replaces the suite's; each is listed in docs/executor.md."""

from __future__ import annotations

import pickle
import sys
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


def _fails_one_task(what: str, call: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], None]:
    def test(self: Any) -> None:
        # The suite expects the pool to break (or the SystemExit to reach the caller);
        # fermion fails only that task with a SerializationError naming what could not
        # be (un)pickled, and the same pool runs the next task.
        fn, *args = call(sys.modules[type(self).__module__])
        self.executor.shutdown(wait=True)
        executor = self.executor_type(max_workers=2, mp_context=self.get_context())
        try:
            future = executor.submit(fn, *args)
            with self.assertRaisesRegex(fermion.errors.SerializationError, what):
                future.result(timeout=60)
            self.assertEqual(executor.submit(abs, -5).result(timeout=60), 5)
        finally:
            executor.shutdown(wait=True)

    return test


def _shutdown_deadlock_pickle(self: Any) -> None:
    # The suite's test less its last line, which joins the standard pool's manager
    # thread (an internal): a task that cannot be pickled, submitted just before
    # shutdown(wait=False), still fails with a PicklingError (fermion's
    # SerializationError is one) and the pool's shutdown ends.
    suite = sys.modules[type(self).__module__]
    self.executor.shutdown(wait=True)
    with self.executor_type(max_workers=2, mp_context=self.get_context()) as executor:
        self.executor = executor
        executor.submit(id, 42).result()
        future = executor.submit(id, suite.ErrorAtPickle())
        executor.shutdown(wait=False)
        with self.assertRaises(pickle.PicklingError):
            future.result()


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
    "*ExecutorDeadlockTest.test_error_at_task_unpickle": (
        "an error unpickling the arguments in the worker fails that task with "
        "SerializationError and the pool goes on (the suite expects a broken pool)",
        _fails_one_task("argument", lambda suite: (id, suite.ErrorAtUnpickle())),
    ),
    "*ExecutorDeadlockTest.test_exit_at_task_unpickle": (
        "SystemExit unpickling the arguments fails that task with SerializationError "
        "and the pool goes on (the suite expects a broken pool)",
        _fails_one_task("argument", lambda suite: (id, suite.ExitAtUnpickle())),
    ),
    "*ExecutorDeadlockTest.test_exit_during_result_pickle_on_worker": (
        "SystemExit pickling the result fails that task with SerializationError and "
        "the pool goes on (the suite expects the SystemExit itself)",
        _fails_one_task("result", lambda suite: (suite._return_instance, suite.ExitAtPickle)),
    ),
    "*ExecutorDeadlockTest.test_error_during_result_unpickle_in_result_handler": (
        "an error unpickling the result fails that task with SerializationError and "
        "the pool goes on (the suite expects a broken pool)",
        _fails_one_task("result", lambda suite: (suite._return_instance, suite.ErrorAtUnpickle)),
    ),
    "*ExecutorDeadlockTest.test_exit_during_result_unpickle_in_result_handler": (
        "SystemExit unpickling the result fails that task with SerializationError and "
        "the pool goes on (the suite expects a broken pool)",
        _fails_one_task("result", lambda suite: (suite._return_instance, suite.ExitAtUnpickle)),
    ),
    "*ExecutorDeadlockTest.test_shutdown_deadlock_pickle": (
        "run without its last line, which joins the standard pool's manager thread (an internal)",
        _shutdown_deadlock_pickle,
    ),
}
