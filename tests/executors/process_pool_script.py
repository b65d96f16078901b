"""A program the process-pool tests run as a subprocess, then interrupt or kill.

Usage: process_pool_script.py MODE START_METHOD READY_FILE

It starts a pool of two workers, makes both run a task that sleeps a minute, writes
the worker pids to READY_FILE, and then, by MODE:

- ``terminate``: waits for the results; on KeyboardInterrupt calls ``terminate()``
  (what the Executor's shutdown path does) and lets the interrupt propagate;
- ``atexit``: waits for the results and handles nothing: the interrupt reaches the top
  and only the exit handler can stop the workers;
- ``wait``: waits for the results (the test kills this process: workers must notice);
- ``leave``: returns at once without shutting the pool down, its tasks sleeping 2 s
  (exit finishes them, then ends every worker);
- ``executor``: the same work through ``with fermion.Executor("processes") as ex:``
  and ``ex.map``, as a user writes it; Ctrl-C must end it all the same.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import process_pool_helpers as helpers

from fermion.executors._base import Task
from fermion.executors._processes import ProcessBackend


def main(mode: str, start_method: str, ready_file: str) -> None:
    if mode == "executor":
        run_executor(start_method, ready_file)
        return
    backend = ProcessBackend(workers=2, start_method=start_method)
    tasks = []
    for i in range(2):
        flag = f"{ready_file}.started{i}"
        seconds = 2 if mode == "leave" else 60
        task = Task(helpers.touch_then_sleep, [((flag, seconds), {})], batch=False)
        backend.submit(task)
        tasks.append((task, flag))
    pending = [Task(helpers.square, [((i,), {})], batch=False) for i in range(10)]
    for task in pending:
        backend.submit(task)
    pids = []
    for _, flag in tasks:
        if not helpers.wait_for_file(flag, 60):
            sys.exit("the tasks did not start")
        pids.append(Path(flag).read_text())
    announce(ready_file, pids)
    if mode == "leave":
        return
    try:
        for task, _ in tasks:
            task.future.result(timeout=120)
    except KeyboardInterrupt:
        if mode == "terminate":
            backend.terminate("KeyboardInterrupt")
            assert all(t.future.cancelled() for t in pending)
        raise


def announce(ready_file: str, pids: list[str]) -> None:
    Path(ready_file + ".tmp").write_text(" ".join(pids))
    os.replace(ready_file + ".tmp", ready_file)


def run_executor(start_method: str, ready_file: str) -> None:
    import threading

    from fermion import Executor

    flags = [f"{ready_file}.started{i}" for i in range(2)]

    def announce_when_started() -> None:
        if all(helpers.wait_for_file(flag, 60) for flag in flags):
            announce(ready_file, [Path(flag).read_text() for flag in flags])

    threading.Thread(target=announce_when_started, daemon=True).start()
    with Executor("processes", workers=2, start_method=start_method) as ex:
        list(ex.map(helpers.touch_then_sleep, flags, [60, 60], chunksize=1))


if __name__ == "__main__":
    main(*sys.argv[1:4])
