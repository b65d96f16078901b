"""A timer thread iterates a list of timer events while another thread adds and removes
events: items are silently skipped (a list iterator walks by index).

From python-can-j1939 (https://github.com/juergenH87/python-can-j1939/pull/42): the
ECU's timer thread loops over ``self._timer_events`` firing callbacks, while
``add_timer`` / ``remove_timer`` append to and remove from it from other threads,
with no lock.
"""

import threading


class Ecu:
    def __init__(self):
        self._timer_events = []
        self.fired = 0

    def add_timer(self, delta, callback):
        self._timer_events.append({"delta": delta, "callback": callback})  # RACE-HERE

    def remove_timer(self, callback):
        for event in list(self._timer_events):
            if event["callback"] == callback:
                self._timer_events.remove(event)  # RACE-HERE

    def timer_thread(self, rounds):
        for _ in range(rounds):
            for event in self._timer_events:  # RACE-HERE
                self.fired += event["delta"] > 0


def callback_of(i):
    return i


ecu = Ecu()
timer = threading.Thread(target=ecu.timer_thread, args=(50,), name="timer")
timer.start()
for i in range(50):
    ecu.add_timer(1, callback_of(i))
    if i >= 2:
        ecu.remove_timer(callback_of(i - 2))
timer.join()
