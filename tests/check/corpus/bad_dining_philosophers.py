"""Five philosophers each take the left fork, then the right one."""

import threading

N = 5
forks = [threading.Lock() for _ in range(N)]
seated = threading.Barrier(N)


def philosopher(i: int) -> None:
    with forks[i]:  # DEADLOCK-HERE
        seated.wait()
        with forks[(i + 1) % N]:  # DEADLOCK-HERE
            pass


threads = [threading.Thread(target=philosopher, args=(i,)) for i in range(N)]
for t in threads:
    t.start()
for t in threads:
    t.join()
