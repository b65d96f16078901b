"""Two workers each hold one of two permits and wait for a second one."""

import threading

permits = threading.Semaphore(2)
both_hold_one = threading.Barrier(2)


def worker() -> None:
    with permits:
        both_hold_one.wait()
        with permits:  # DEADLOCK-HERE
            pass


threads = [threading.Thread(target=worker) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()  # DEADLOCK-HERE
