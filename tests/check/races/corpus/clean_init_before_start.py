"""Shared state written before the threads start, only read by them."""

import threading

settings = {}
limits = [0, 0]
mode = "slow"


class Options:
    pass


options = Options()


def configure():
    global mode
    mode = "fast"
    settings["retries"] = 3
    limits[0] = 10
    options.verbose = True


def worker(out, i):
    out[i] = (mode, settings["retries"], limits[0], options.verbose)


configure()
out = [None] * 3
threads = [threading.Thread(target=worker, args=(out, i)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert out == [("fast", 3, 10, True)] * 3
