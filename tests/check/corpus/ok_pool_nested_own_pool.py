"""The fix of bad_pool_saturated_by_nested_waits.py: the sub-tasks get their own pool.

(https://github.com/bshoshany/thread-pool/issues/95). Outer tasks wait on futures of
another executor, whose workers are free, so every wait ends.
"""

from concurrent.futures import ThreadPoolExecutor

outer_pool = ThreadPoolExecutor(max_workers=4)
inner_pool = ThreadPoolExecutor(max_workers=2)


def chunk(i: int) -> int:
    return i * i


def outer(n: int) -> int:
    parts = [inner_pool.submit(chunk, i) for i in range(n)]
    return sum(p.result() for p in parts)


results = [f.result() for f in [outer_pool.submit(outer, 3) for _ in range(8)]]
assert results == [5] * 8
outer_pool.shutdown()
inner_pool.shutdown()
