"""Safety nets for every test: a stack dump on hang, and leak checks after each test.

A test that leaves behind a non-daemon thread, a child process or a fermion
shared-memory segment fails, naming what it left.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import os
import sys
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

faulthandler.enable(file=sys.stderr, all_threads=True)

SHM_DIR = "/dev/shm"


def _fermion_segments() -> set[str]:
    """This test process's segments: fermion names them ``fermion-<creator pid>-...``,
    and workers name theirs after the caller's pid, so other test runs on the same
    machine are left alone."""
    prefix = f"fermion-{os.getpid()}-"
    try:
        return {n for n in os.listdir(SHM_DIR) if n.startswith(prefix)}
    except FileNotFoundError:  # not Linux
        return set()


def _multiprocessing_helpers() -> set[int]:
    """Long-lived helper processes that multiprocessing itself keeps per interpreter."""
    pids: set[int] = set()
    try:
        from multiprocessing import forkserver, resource_tracker

        fs = getattr(forkserver, "_forkserver", None)
        if fs is not None and getattr(fs, "_forkserver_pid", None):
            pids.add(fs._forkserver_pid)
        rt = getattr(resource_tracker, "_resource_tracker", None)
        if rt is not None and getattr(rt, "_pid", None):
            pids.add(rt._pid)
    except ImportError:
        pass
    return pids


def _live_children() -> set[int]:
    me = psutil.Process()
    helpers = _multiprocessing_helpers()
    out = set()
    for child in me.children(recursive=False):
        try:
            if child.pid in helpers or child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.NoSuchProcess:
            continue
        out.add(child.pid)
    return out


def _non_daemon_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not t.daemon and t.is_alive()}


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    threads_before = _non_daemon_threads()
    children_before = _live_children()
    shm_before = _fermion_segments()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        threads = _non_daemon_threads() - threads_before
        children = _live_children() - children_before
        shm = _fermion_segments() - shm_before
        if not (threads or children or shm) or time.monotonic() > deadline:
            break
        if shm:
            # a segment is freed when its owner object is; on free-threaded builds an
            # object released by another thread is freed at the next collection
            gc.collect()
        time.sleep(0.05)
    problems = []
    if threads:
        problems.append(f"threads still running: {sorted(t.name for t in threads)}")
    if children:
        problems.append(f"child processes still alive: {sorted(children)}")
        for pid in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
    if shm:
        problems.append(f"shared-memory segments leaked in {SHM_DIR}: {sorted(shm)}")
        for name in shm:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(SHM_DIR, name))
    if problems:
        pytest.fail(f"{request.node.nodeid} leaked: " + "; ".join(problems), pytrace=False)


_CPU_HOG = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end:\n    pass\n"


@pytest.fixture
def cpu_hogs() -> Iterator[int]:
    """Two processes spinning on the CPU (one per core on a bigger machine) for the test's
    length, killed after it; yields how many. They are children of the test process, so
    a program the test starts sees them as other programs, not as its own."""
    import subprocess

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    hogs = [subprocess.Popen([sys.executable, "-c", _CPU_HOG]) for _ in range(max(2, cores or 1))]
    try:
        yield len(hogs)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait(timeout=30)
