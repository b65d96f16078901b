"""Each thread makes its own closure counter: the nonlocal is not shared."""

import threading


def make_counter():
    count = 0

    def bump():
        nonlocal count
        count += 1
        return count

    return bump


def work(out, i):
    bump = make_counter()
    for _ in range(50):
        value = bump()
    out[i] = value


out = [0] * 3
threads = [threading.Thread(target=work, args=(out, i)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert out == [50] * 3
