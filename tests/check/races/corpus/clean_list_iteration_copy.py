"""The timer events of racy_list_iteration_vs_append_remove.py with the fix: adding and
removing take a lock, and the timer thread iterates a copy taken under that lock.

The bug and its fix: https://github.com/juergenH87/python-can-j1939/pull/42.
"""

import threading


class Ecu:
    def __init__(self):
        self._timer_events = []
        self._lock = threading.Lock()
        self.fired = 0

    def add_timer(self, delta, callback):
        with self._lock:
            self._timer_events.append({"delta": delta, "callback": callback})

    def remove_timer(self, callback):
        with self._lock:
            for event in list(self._timer_events):
                if event["callback"] == callback:
                    self._timer_events.remove(event)

    def timer_thread(self, rounds):
        for _ in range(rounds):
            with self._lock:
                events = list(self._timer_events)
            for event in events:
                self.fired += event["delta"] > 0


def add_new(ecu, count):
    for i in range(count, 2 * count):
        ecu.add_timer(1, i)


def remove_old(ecu, count):
    for i in range(count):
        ecu.remove_timer(i)


ecu = Ecu()
for i in range(20):
    ecu.add_timer(1, i)
threads = [
    threading.Thread(target=ecu.timer_thread, args=(50,), name="timer"),
    threading.Thread(target=add_new, args=(ecu, 20), name="adder"),
    threading.Thread(target=remove_old, args=(ecu, 20), name="remover"),
]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert sorted(e["callback"] for e in ecu._timer_events) == list(range(20, 40))
