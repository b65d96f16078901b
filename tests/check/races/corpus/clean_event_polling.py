"""A worker publishes its result, then sets an event the main thread polls with is_set()."""

import threading

done = threading.Event()
result = {}


def work():
    result["value"] = sum(range(100))
    done.set()


t = threading.Thread(target=work)
t.start()
while not done.is_set():
    done.wait(0.01)
value = result["value"]
t.join()
assert value == 4950
