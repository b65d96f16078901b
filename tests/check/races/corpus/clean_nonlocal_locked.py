"""A closure counter shared by threads, every update under one lock."""

import threading


def count_in_parallel(workers, times):
    count = 0
    lock = threading.Lock()

    def bump():
        nonlocal count
        for _ in range(times):
            with lock:
                count += 1

    threads = [threading.Thread(target=bump) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count


assert count_in_parallel(3, 100) == 300
