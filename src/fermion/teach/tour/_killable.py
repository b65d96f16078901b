"""Section: child processes are killable, threads are not. A runaway task given a
timeout: in a worker process fermion kills the worker at the deadline and starts a new
one; in a thread it can only send an interrupt, which Python code receives at its next
instruction and code inside one long C call (a sleep, a big NumPy operation, a
blocking read) not before that call returns. Measured: when the caller got its error,
and when the task really stopped.
"""

from __future__ import annotations

import time
from typing import Any

import fermion
from fermion.teach.tour._programs import load_program
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["PROGRAM", "run"]

KEY = "killable"
TITLE = "Killable processes: stopping a runaway task in a process and in a thread"
EXERCISE = "Give long_call_in_c a timeout on threads and call executor.kill(future) instead: when does the thread stop? Then do the same on processes."

PROGRAM = '''"""Two runaway tasks: a Python loop and one long call into C."""

import os
import time

ended = {}  # tag -> when the task really stopped (seen in the process that ran it)


def python_loop(seconds, tag=None):
    """Pure Python that runs ``seconds`` (think: forever)."""
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pass
    finally:
        ended[tag] = time.perf_counter()


def long_call_in_c(seconds, tag=None):
    """One call into C that does not return for ``seconds``."""
    try:
        time.sleep(seconds)
    finally:
        ended[tag] = time.perf_counter()


def worker_pid():
    return os.getpid()


if __name__ == "__main__":
    import fermion

    for backend in ("processes", "threads"):
        with fermion.Executor(backend, 1) as executor:
            for task in (python_loop, long_call_in_c):
                started = time.perf_counter()
                future = executor.schedule(task, (3,), timeout=0.5)
                try:
                    future.result()
                except fermion.TaskTimeoutError:
                    print(f"{backend} {task.__name__}: stopped after "
                          f"{time.perf_counter() - started:.2f} s")
'''


def _stop(
    program: dict[str, Any], backend: str, task: str, runaway: float, timeout: float
) -> dict[str, Any]:
    """Run ``task`` with a timeout on a one-worker pool of ``backend``: when the caller got
    TaskTimeoutError, when the task really ended (threads: seen in ``ended``), and
    whether the worker was replaced (processes: a new pid)."""
    ended: dict[Any, float] = program["ended"]
    tag = f"{backend}-{task}"
    with fermion.Executor(backend, 1) as executor:
        pid_before = executor.submit(program["worker_pid"]).result()
        started = time.perf_counter()
        future = executor.schedule(program[task], (runaway, tag), timeout=timeout)
        try:
            future.result(timeout=runaway + 30)
            error = "it finished"
        except fermion.TaskTimeoutError:
            error = "TaskTimeoutError"
        caller = time.perf_counter() - started
        next_task = executor.submit(program["worker_pid"])
        pid_after = next_task.result(timeout=runaway + 30)
        free = time.perf_counter() - started
    if backend == "threads":
        # The interrupted thread is retired, not joined: wait (bounded) until the task
        # says it ended, to know when it really stopped.
        give_up = time.perf_counter() + runaway + 5
        while tag not in ended and time.perf_counter() < give_up:
            time.sleep(0.01)
    stopped = ended[tag] - started if tag in ended else None
    return {
        "backend": backend,
        "task": task,
        "caller_error": error,
        "caller_seconds": caller,
        "task_stopped": stopped,
        "next_task_ran_after": free,
        "worker_replaced": pid_after != pid_before if backend == "processes" else False,
    }


def run(ctx: TourContext, section: SectionResult) -> None:
    """A runaway Python loop and a long C call, each with a timeout, in a process and a thread."""
    timeout = 0.3 if ctx.quick else 0.5
    runaway = 1.5 if ctx.quick else 2.0  # seconds each runaway would run if not stopped
    program = load_program(ctx.out / "programs", "runaway_tasks", PROGRAM)
    section.code(PROGRAM, program["__file__"])
    runs: list[dict[str, Any]] = []
    for backend in ("processes", "threads"):
        for task in ("python_loop", "long_call_in_c"):
            ctx.progress(f"{task}({runaway:g}) on {backend}, timeout {timeout:g} s")
            try:
                runs.append(_stop(program, backend, task, runaway, timeout))
            except Exception as error:
                section.fail(f"{task} on {backend}", error)
    section.say(
        f"Each task would run {runaway:g} s; it is given a timeout of {timeout:g} s "
        f"(executor.schedule(task, ({runaway:g},), timeout={timeout:g})), on a pool of one worker:"
    )
    rows = [
        f"{'backend':<10} {'task':<16} {'caller got':<27} {'task really stopped':>20} "
        f"{'next task ran':>14}"
    ]
    for r in runs:
        if r["backend"] == "processes":
            stopped = "killed" + (" (new worker)" if r["worker_replaced"] else "")
        else:
            stopped = "-" if r["task_stopped"] is None else f"at {r['task_stopped']:.2f} s"
        rows.append(
            f"{r['backend']:<10} {r['task']:<16} "
            f"{r['caller_error'] + ' at ' + format(r['caller_seconds'], '.2f') + ' s':<27} "
            f"{stopped:>20} {r['next_task_ran_after']:>11.2f} s"
        )
    section.show("\n".join(rows))
    section.data.update({"timeout": timeout, "runaway": runaway, "runs": runs})
    by = {(r["backend"], r["task"]): r for r in runs}
    texts = []
    killed = [
        by[("processes", t)] for t in ("python_loop", "long_call_in_c") if ("processes", t) in by
    ]
    if len(killed) == 2:
        texts.append(
            "In a process both were stopped at the deadline: the caller got TaskTimeoutError "
            f"after {killed[0]['caller_seconds']:.2f} and {killed[1]['caller_seconds']:.2f} s, "
            "the worker was killed (SIGKILL: nothing in it can refuse) and a new one ran the "
            f"next task {killed[0]['next_task_ran_after']:.2f} and "
            f"{killed[1]['next_task_ran_after']:.2f} s after the start."
        )
    loop, c_call = by.get(("threads", "python_loop")), by.get(("threads", "long_call_in_c"))
    if loop and c_call:
        texts.append(
            f"In a thread the caller was released on time too ({loop['caller_seconds']:.2f} "
            f"and {c_call['caller_seconds']:.2f} s) and the pool ran the next task on a new "
            f"thread ({c_call['next_task_ran_after']:.2f} s), but a thread cannot be killed, "
            "only interrupted: the Python loop took the interrupt at its next instruction and "
            f"stopped at {_at(loop['task_stopped'])}, while the C call went on to its end and "
            f"stopped at {_at(c_call['task_stopped'])}, its thread alive all along. A task "
            "that may need stopping belongs in a process."
        )
    for text in texts:
        section.say(text)


def _at(seconds: float | None) -> str:
    return "an unknown time" if seconds is None else f"{seconds:.2f} s"
