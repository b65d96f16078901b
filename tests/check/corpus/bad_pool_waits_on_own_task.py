"""A task waits for another task of the same one-worker pool: it can never run.

The deadlock CPython documents for ThreadPoolExecutor (Doc/library/concurrent.futures.rst,
"Deadlocks can occur when the callable associated with a Future waits on the results of
another Future"; the example fixed in https://github.com/python/cpython/pull/141620,
gh-141617). The only worker runs ``wait_on_future``, which waits for ``pow`` queued on
the same pool. The main thread waits for that task's result (as the documented
``wait_on_future`` example needs, or interpreter shutdown refuses the inner submit).
"""

from concurrent.futures import ThreadPoolExecutor


def wait_on_future() -> None:
    f = executor.submit(pow, 5, 2)
    # This never completes: the only worker thread is running this function.
    print(f.result())  # DEADLOCK-HERE


executor = ThreadPoolExecutor(max_workers=1)
executor.submit(wait_on_future).result()
