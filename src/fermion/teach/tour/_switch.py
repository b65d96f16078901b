"""Section: the GIL's switch interval. A thread that computes in pure Python keeps the
GIL until the interpreter asks it to let go, every ``sys.getswitchinterval()`` seconds
(5 ms by default); a thread that wakes up meanwhile waits for it. Measured: how long a
thread waking from a 1 ms sleep waits beyond it while another thread spins, at three
switch intervals set with ``sys.setswitchinterval`` (the lecture's
``sys.setcheckinterval`` is gone since Python 3.9).
"""

from __future__ import annotations

import sys
from typing import Any

from fermion.teach.tour._machine import free_threaded
from fermion.teach.tour._programs import load_program
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["PROGRAM", "run"]

KEY = "gil"
TITLE = "The GIL's switch interval: how long a waking thread waits"
EXERCISE = "Run wake_up_delay at sys.setswitchinterval(0.0001) and at 0.1: how late does the waking thread get? Then start a second spinning thread: what changes?"

PROGRAM = '''"""How long a thread waking from a short sleep waits for the GIL while another
thread runs pure Python, at a given switch interval."""

import statistics
import sys
import threading
import time

NAP = 0.001  # each sleep: 1 ms


def spin(stop):
    while not stop.is_set():
        pass  # pure Python: holds the GIL until asked to switch


def wake_up_delay(interval, naps, spinning=True):
    """Median seconds a thread waits beyond its 1 ms sleep, with one other thread
    spinning (or none), at switch interval ``interval``."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    stop = threading.Event()
    spinner = threading.Thread(target=spin, args=(stop,))
    if spinning:
        spinner.start()
    late = []
    try:
        for _ in range(naps):
            asked = time.perf_counter()
            time.sleep(NAP)
            late.append(time.perf_counter() - asked - NAP)
    finally:
        stop.set()
        if spinning:
            spinner.join()
        sys.setswitchinterval(previous)
    return statistics.median(late)


if __name__ == "__main__":
    print(f"switch interval: {sys.getswitchinterval() * 1e3:g} ms by default")
    print(f"sys.setcheckinterval exists: {hasattr(sys, 'setcheckinterval')}")
    for interval in (0.0005, 0.005, 0.02):
        delay = wake_up_delay(interval, naps=20)
        print(f"interval {interval * 1e3:g} ms: a waking thread waited {delay * 1e3:.2f} ms")
'''

#: The switch intervals tried, in seconds: a tenth of the default, the default, 4x.
INTERVALS = (0.0005, 0.005, 0.02)


def run(ctx: TourContext, section: SectionResult) -> None:
    """Measure the wake-up delay at each switch interval, with and without a spinner."""
    naps = 10 if ctx.quick else 20
    program = load_program(ctx.out / "programs", "switch_interval", PROGRAM)
    default = sys.getswitchinterval()
    has_check = hasattr(sys, "setcheckinterval")
    section.data.update(
        {"default_interval": default, "has_setcheckinterval": has_check, "naps": naps}
    )
    section.say(
        f"This Python switches threads every {default * 1e3:g} ms by default "
        f"(sys.getswitchinterval()); sys.setswitchinterval(seconds) changes it. The lecture's "
        f"sys.setcheckinterval {'still exists here' if has_check else 'is gone (removed in Python 3.9)'}"
        "."
    )
    section.code(PROGRAM, program["__file__"])
    ctx.progress("a sleeping thread alone")
    alone = program["wake_up_delay"](default, naps, spinning=False)
    rows = [f"{'switch interval':<16} {'a waking thread waited (median of ' + str(naps) + ')':<40}"]
    rows.append(f"{'no other thread':<16} {alone * 1e3:>8.2f} ms")
    delays: dict[str, float] = {}
    for interval in INTERVALS:
        ctx.progress(f"sys.setswitchinterval({interval:g}) with a spinning thread")
        delay = program["wake_up_delay"](interval, naps)
        delays[f"{interval:g}"] = delay
        rows.append(f"{f'{interval * 1e3:g} ms':<16} {delay * 1e3:>8.2f} ms")
    section.show("\n".join(rows))
    section.data.update({"alone": alone, "delays": delays})
    default_delay = delays.get(f"{0.005:g}")
    if free_threaded():
        section.say(
            "This build runs without the GIL: the waking thread does not wait for the "
            f"spinning one at any interval (it waited {min(delays.values()) * 1e3:.2f} to "
            f"{max(delays.values()) * 1e3:.2f} ms, about the {alone * 1e3:.2f} ms it waits alone)."
        )
    else:
        shortest, longest = delays[f"{INTERVALS[0]:g}"], delays[f"{INTERVALS[-1]:g}"]
        section.say(
            f"Alone, the thread wakes {alone * 1e3:.2f} ms late (the operating system's part). "
            f"With a thread computing beside it, it waits for the GIL: "
            f"{shortest * 1e3:.2f} ms at a {INTERVALS[0] * 1e3:g} ms interval, "
            f"{_ms(default_delay)} at the default, {longest * 1e3:.2f} ms at "
            f"{INTERVALS[-1] * 1e3:g} ms. A shorter interval makes threads more responsive "
            "and costs more switches; it never lets two threads run Python at once."
        )


def _ms(seconds: Any) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f} ms"
