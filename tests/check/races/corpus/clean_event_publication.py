"""Data written, then published with Event.set(); readers wait for the event first."""

import threading

ready = threading.Event()
data = {}


class Box:
    content = None


box = Box()


def publisher():
    data["answer"] = 42
    box.content = [1, 2, 3]
    ready.set()


def reader(out, i):
    assert ready.wait(timeout=10)
    out[i] = (data["answer"], box.content)


out = [None, None]
threads = [threading.Thread(target=reader, args=(out, i)) for i in range(2)]
threads.append(threading.Thread(target=publisher))
for t in threads:
    t.start()
for t in threads:
    t.join()
assert out == [(42, [1, 2, 3])] * 2
