"""Ctrl-C in a program using ``with fermion.Executor(...)``: a real SIGINT, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

PROGRAM = textwrap.dedent(
    """
    import sys, time
    import fermion

    def spin(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    if __name__ == "__main__":
        with fermion.Executor(sys.argv[1], 2) as executor:
            results = executor.map(spin, [60] * 6, chunksize=1)
            print("ready", flush=True)
            list(results)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_sigint_ends_the_program_quickly_and_leaves_no_workers(
    backend: str, tmp_path: os.PathLike[str]
) -> None:
    script = os.path.join(tmp_path, "program.py")
    with open(script, "w") as f:
        f.write(PROGRAM)
    child = subprocess.Popen(
        [sys.executable, script, backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        workers: list[psutil.Process] = []
        deadline = time.monotonic() + 30
        while backend == "processes" and len(workers) < 2 and time.monotonic() < deadline:
            workers = _workers(child.pid)
            time.sleep(0.05)
        if backend == "processes":
            assert len(workers) >= 2, "the pool's two workers never appeared"
            everything = psutil.Process(child.pid).children(recursive=True)
        time.sleep(0.2)  # let the tasks start
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        took = time.monotonic() - interrupted
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert child.returncode != 0
    assert "KeyboardInterrupt" in stderr
    assert took < 10, took  # the 60 s tasks were not waited for
    if backend == "processes":
        _, alive = psutil.wait_procs(everything, timeout=10)  # workers, forkserver, tracker
        assert not alive, alive


def _workers(pid: int) -> list[psutil.Process]:
    """The pool's workers under process *pid*: its descendants but for multiprocessing's
    own helpers (a forkserver's workers are forks of it and carry its command line, so
    they are told apart by their parent)."""
    helpers = ("forkserver", "resource_tracker")
    out = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if p.ppid() == pid and any(h in " ".join(p.cmdline()) for h in helpers):
                continue
        except psutil.NoSuchProcess:
            continue
        out.append(p)
    return out
