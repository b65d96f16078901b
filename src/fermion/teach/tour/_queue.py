"""Section: thread-safe data structures. ``queue.Queue`` between producer and consumer
threads: every item arrives exactly once with no lock in the user's code, a bounded
queue makes a fast producer wait (back-pressure), and ``queue.SimpleQueue`` is the
cheaper unbounded one. Measured: items delivered, duplicates, the fullest the queue
got, and throughput.
"""

from __future__ import annotations

from typing import Any

from fermion.teach.tour._programs import load_program
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["PROGRAM", "run"]

KEY = "queue"
TITLE = "Thread-safe data structures: producers and consumers on a Queue"
EXERCISE = "Give the bounded queue maxsize=1 and time it again; then replace the queue with a plain list and `if items: items.pop()` in the consumers. What goes wrong, and how often?"

PROGRAM = '''"""Two producers, two consumers, one queue: no lock in this code."""

import queue
import threading
import time

PRODUCERS = 2
CONSUMERS = 2
DONE = None  # one per consumer: no more items


def produce_consume(channel, items):
    """Send 0..items-1 through ``channel``: (items received in order of arrival, the
    fullest the queue got, seconds)."""
    received = [[] for _ in range(CONSUMERS)]
    fullest = [0]

    def producer(first):
        for item in range(first, items, PRODUCERS):
            channel.put(item)  # waits while a bounded queue is full
            fullest[0] = max(fullest[0], channel.qsize())

    def consumer(mine):
        while (item := channel.get()) is not DONE:
            mine.append(item)

    started = time.perf_counter()
    producers = [threading.Thread(target=producer, args=(p,)) for p in range(PRODUCERS)]
    consumers = [threading.Thread(target=consumer, args=(r,)) for r in received]
    for thread in [*producers, *consumers]:
        thread.start()
    for thread in producers:
        thread.join()
    for _ in consumers:
        channel.put(DONE)
    for thread in consumers:
        thread.join()
    seconds = time.perf_counter() - started
    return [item for mine in received for item in mine], fullest[0], seconds


if __name__ == "__main__":
    for channel in (queue.Queue(maxsize=100), queue.Queue(), queue.SimpleQueue()):
        got, fullest, seconds = produce_consume(channel, 20_000)
        print(f"{type(channel).__name__}: {len(got)} items, {len(set(got))} distinct, "
              f"fullest {fullest}, {len(got) / seconds:,.0f} items/s")
'''


def run(ctx: TourContext, section: SectionResult) -> None:
    """Send items through a bounded Queue, an unbounded one and a SimpleQueue."""
    import queue

    items = 20_000 if ctx.quick else 50_000
    bound = 100
    program = load_program(ctx.out / "programs", "producer_consumer", PROGRAM)
    section.code(PROGRAM, program["__file__"])
    channels: list[tuple[str, Any]] = [
        (f"queue.Queue(maxsize={bound})", queue.Queue(maxsize=bound)),
        ("queue.Queue()", queue.Queue()),
        ("queue.SimpleQueue()", queue.SimpleQueue()),
    ]
    rows = [f"{'channel':<24} {'received':>9} {'distinct':>9} {'fullest':>8} {'items/s':>11}"]
    results: dict[str, Any] = {}
    for label, channel in channels:
        ctx.progress(f"{items} items through {label}")
        got, fullest, seconds = program["produce_consume"](channel, items)
        distinct = len(set(got))
        rate = len(got) / seconds if seconds > 0 else 0.0
        results[label] = {
            "received": len(got),
            "distinct": distinct,
            "complete": sorted(got) == list(range(items)),
            "fullest": fullest,
            "items_per_second": rate,
        }
        rows.append(f"{label:<24} {len(got):>9} {distinct:>9} {fullest:>8} {rate:>11,.0f}")
    section.show("\n".join(rows))
    section.data.update({"items": items, "bound": bound, "results": results})
    bounded = results[channels[0][0]]
    unbounded = results[channels[1][0]]
    simple = results[channels[2][0]]
    complete = all(r["complete"] for r in results.values())
    section.say(
        f"{'Every' if complete else 'NOT every'} item of {items} arrived exactly once on each "
        "channel, with no lock in the program: the queue does the locking inside put and get. "
        f"The bounded queue never held more than {bounded['fullest']} items (maxsize {bound}: "
        f"a producer that gets ahead waits), the unbounded one up to {unbounded['fullest']}. "
        f"SimpleQueue, unbounded and written in C, moved {simple['items_per_second']:,.0f} "
        f"items/s against {unbounded['items_per_second']:,.0f} for Queue()."
    )
