"""concurrent.futures' thread pool, whose internals use patched primitives."""

from concurrent.futures import ThreadPoolExecutor


def square(x: int) -> int:
    return x * x


with ThreadPoolExecutor(max_workers=3) as pool:
    assert list(pool.map(square, range(20))) == [x * x for x in range(20)]
    futures = [pool.submit(square, i) for i in range(5)]
    assert [f.result() for f in futures] == [0, 1, 4, 9, 16]
