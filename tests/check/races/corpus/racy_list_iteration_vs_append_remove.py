"""A timer thread iterates a list of timer events while other threads add and remove
events: items are silently skipped (a list iterator walks by index).

From python-can-j1939 (https://github.com/juergenH87/python-can-j1939/pull/42): the
ECU's timer thread loops over ``self._timer_events`` firing callbacks, while
``add_timer`` / ``remove_timer``, called from application threads, append to it and
remove from it, with no lock.
"""

import threading


class Ecu:
    def __init__(self):
        self._timer_events = []
        self.fired = 0

    def add_timer(self, delta, callback):
        self._timer_events.append({"delta": delta, "callback": callback})  # RACE-HERE

    def remove_timer(self, callback):
        for event in list(self._timer_events):  # RACE-HERE
            if event["callback"] == callback:
                self._timer_events.remove(event)  # RACE-HERE

    def timer_thread(self, rounds):
        for _ in range(rounds):
            for event in self._timer_events:  # RACE-HERE
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
