"""A closure counter (nonlocal) shared by the threads of one call."""

import threading


def count_in_parallel(workers, times):
    count = 0

    def bump():
        nonlocal count
        for _ in range(times):
            count += 1  # RACE-HERE

    threads = [threading.Thread(target=bump) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count


total = count_in_parallel(3, 100)
assert total <= 300
