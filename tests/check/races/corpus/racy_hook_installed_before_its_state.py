"""A hook installed before the state it reads (pebble's waitforthreads): threading's
get_ident is replaced by a function that calls the saved original, which is stored
only after the replacement is in place. A thread that ends meanwhile calls the hook
while threading tears it down, and may call the placeholder instead. The gate lets the
worker end only after the store, but a lock's release→acquire orders nothing for the
detector: in another run the worker could have ended first."""

import threading


def wait_for_thread_ends(gate, worker):
    original = lambda: 0  # noqa: E731  (a placeholder, as pebble's)
    ended = threading.Event()

    def announcing_get_ident():
        ident = original()  # RACE-HERE
        ended.set()
        return ident

    saved = threading.get_ident
    threading.get_ident = announcing_get_ident
    original = saved  # RACE-HERE
    gate.release()
    try:
        ended.wait(timeout=10)
        worker.join(timeout=10)
    finally:
        threading.get_ident = saved


gate = threading.Lock()
gate.acquire()
worker = threading.Thread(target=lambda: (gate.acquire(), gate.release()))
worker.start()
wait_for_thread_ends(gate, worker)
assert threading.get_ident() != 0
