"""A program the lifetime tests run in a subprocess: ``python _sharing_script.py MODE``.

Prints ``ready <pid> <child pid>`` once it holds shared memory, then, per MODE:
``exit`` returns normally (after a line on stdin) without dropping anything, ``wait`` blocks until SIGINT,
``pool`` runs a process pool with big arguments in flight until SIGINT; ``plain-pool``
does the same holding no shared array of its own (only the pool's argument copies).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

import _sharing_children as children
import numpy as np

import fermion
from fermion.executors._processes import _codec
from fermion.sharing import _segments


def pool_main() -> None:
    """A pool busy with big arguments and results, holding a shared array, until Ctrl-C."""
    kept = fermion.shared_array(1 << 18)
    with fermion.Executor("processes", workers=2) as ex:
        done = ex.submit(children.big_result, 1 << 21).result(timeout=60)
        futures = [ex.submit(children.sleep_then_return, np.ones(1 << 18)) for _ in range(6)]
        print("ready", multiprocessing.current_process().pid, 0, flush=True)
        for future in futures:
            future.result()
    del kept, done


def plain_pool_main() -> None:
    """A pool whose only segments are its argument copies (made by the pool's thread):
    the same writable array and the same read-only one, each passed to several tasks."""
    plain = np.ones(1 << 18)
    table = np.full(1 << 18, 2.0)
    table.flags.writeable = False
    with fermion.Executor("processes", workers=2) as ex:
        # A worker is up (and watching this process) before the copies exist: the SIGKILL
        # case counts on a worker to sweep, and a loaded machine can be slow to start one.
        ex.submit(os.getpid).result(timeout=60)
        futures = [ex.submit(children.sleep_then_return, a) for a in [plain, table] * 3]
        deadline = time.monotonic() + 60
        # The pool's thread makes the copies (listed, not asked: asking from this
        # thread would set up what the test checks the pool sets up by itself).
        while len(_segments.names_starting_with(f"fermion-{os.getpid()}-")) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the pool never copied its arguments")
            time.sleep(0.01)
        print("ready", multiprocessing.current_process().pid, 0, flush=True)
        for future in futures:
            future.result()


def main(mode: str) -> None:
    if mode == "pool":
        pool_main()
        return
    if mode == "plain-pool":
        plain_pool_main()
        return
    kept = fermion.shared_array(1 << 18)  # owned, never dropped
    kept[:] = 1
    counter = fermion.SharedCounter(3)
    context = multiprocessing.get_context("forkserver")
    here, there = context.Pipe()
    child = context.Process(target=children.send_big_results, args=(there, 2, 1 << 21), daemon=True)
    child.start()
    result = _codec.recv(here)  # one result received and mapped; another waits in the pipe
    _codec.send(here, _codec.encode(np.ones(1 << 18)))  # an argument nobody will map
    print("ready", multiprocessing.current_process().pid, child.pid, flush=True)
    if mode == "wait":
        while True:
            time.sleep(0.05)
    sys.stdin.readline()  # "exit": leave when told, dropping nothing
    del result, kept, counter


if __name__ == "__main__":
    main(sys.argv[1])
