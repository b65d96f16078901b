"""The dask backend on a cluster started by command, as users run one: a `dask scheduler`
and two `dask worker` processes on 127.0.0.1, reached by address.

Workers are killed here (from outside, and by the task itself), so this module has a
cluster of its own. The scheduler allows one failure per task
(DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1) so that Dask gives up after two
dead workers instead of four. Each worker has two threads and Dask's default queueing,
so a task that kills its worker shares it with innocent ones, which Dask then gives
up on as well: only the guilty task may fail.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import cloudpickle
import psutil
import pytest

from fermion.errors import DaskWorkerLostError, WorkerCrashedError
from fermion.executors._base import Task

pytestmark = [pytest.mark.dask, pytest.mark.slow]

WAIT = 60.0


def slow_square(x: int) -> int:
    time.sleep(0.02)
    return x * x


def kill_my_worker(_: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_worker_on_three(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def _dask_command(role: str) -> list[str]:
    """`dask scheduler` / `dask worker` from this interpreter's environment."""
    script = pathlib.Path(sys.executable).with_name("dask")
    if script.exists() or shutil.which("dask"):
        return [str(script) if script.exists() else "dask", role]
    return [sys.executable, "-m", f"distributed.cli.dask_{role}"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_resource_tracker(process: psutil.Process) -> bool:
    try:
        return any("multiprocessing.resource_tracker" in part for part in process.cmdline())
    except psutil.Error:
        return False


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    """Kill a dask command and its processes, except multiprocessing's resource trackers:
    once every process that registered semaphores with one is gone, the tracker unlinks
    what they left (the nanny's queues, ``sem.mp-*`` in /dev/shm) and exits. Killed
    with the rest, it left 12 of them per run of this module."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    trackers = [child for child in children if _is_resource_tracker(child)]
    others = [child for child in children if child not in trackers]
    for child in others:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.kill()
    process.wait(timeout=WAIT)
    psutil.wait_procs(others, timeout=WAIT)
    _, alive = psutil.wait_procs(trackers, timeout=WAIT)
    for tracker in alive:  # a tracker that did not finish: do not leave it running
        with contextlib.suppress(psutil.NoSuchProcess):
            tracker.kill()


@pytest.fixture(scope="module")
def command_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed here")
    logs = tmp_path_factory.mktemp("dask-logs")
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = dict(
        os.environ,
        DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1",
    )
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(logs / f"{name}.log", "wb") as log:
            process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        start(
            "scheduler",
            *_dask_command("scheduler"),
            "--host", "127.0.0.1",
            "--port", address.rsplit(":", 1)[1],
            "--no-dashboard",
        )  # fmt: skip
        workers = [
            start(
                f"worker{i}",
                *_dask_command("worker"),
                address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "2",
                "--no-dashboard",
                "--name",
                f"worker{i}",
            )
            for i in range(2)
        ]
        with distributed.Client(address, set_as_default=False, timeout=WAIT) as client:
            client.wait_for_workers(2, timeout=WAIT)
            yield {"address": address, "workers": workers, "client": client, "logs": logs}
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        for process in reversed(processes):
            _kill_tree(process)


def _worker_processes(nannies: list[subprocess.Popen[bytes]]) -> list[psutil.Process]:
    """The Python processes that run tasks (children of the `dask worker` nannies)."""
    return [child for nanny in nannies for child in psutil.Process(nanny.pid).children()]


def test_a_worker_killed_mid_map_is_survived(command_cluster: dict[str, Any]) -> None:
    from fermion.executors._dask import DaskBackend

    command_cluster["client"].wait_for_workers(2, timeout=WAIT)
    backend = DaskBackend(address=command_cluster["address"])
    try:
        assert backend.workers == 4  # two workers of two threads
        tasks = [
            Task(slow_square, [((10 * k + i,), {}) for i in range(10)], batch=True)
            for k in range(20)
        ]
        for task in tasks:
            backend.submit(task)
        tasks[0].future.result(timeout=WAIT)  # the map is under way: now kill a worker
        victim = _worker_processes(command_cluster["workers"])[0]
        victim.send_signal(signal.SIGKILL)
        got = [value for task in tasks for ok, value in task.future.result(timeout=WAIT)]
        assert got == [n * n for n in range(200)]
    finally:
        backend.shutdown()


def test_a_task_that_kills_every_worker_gets_a_named_error(command_cluster: dict[str, Any]) -> None:
    from fermion.executors._dask import DaskBackend

    command_cluster["client"].wait_for_workers(2, timeout=WAIT)
    backend = DaskBackend(address=command_cluster["address"])
    try:
        task = Task(kill_my_worker, [((0,), {})], batch=False)
        backend.submit(task)
        with pytest.raises(
            DaskWorkerLostError,
            match=r"every Dask worker that ran it died \(2 workers, the last tcp://",
        ) as info:
            task.future.result(timeout=WAIT)
        assert isinstance(info.value, WorkerCrashedError)
        assert "distributed.scheduler.allowed-failures" in str(info.value)
        # The nannies restart the workers: the cluster, and this backend, go on.
        after = Task(slow_square, [((3,), {})], batch=False)
        backend.submit(after)
        assert after.future.result(timeout=WAIT) == 9
    finally:
        backend.shutdown()


def test_a_map_item_that_kills_workers_fails_alone(command_cluster: dict[str, Any]) -> None:
    from fermion import Executor

    command_cluster["client"].wait_for_workers(2, timeout=WAIT)
    with Executor(backend="dask", address=command_cluster["address"]) as executor:
        # One chunk of four items, the last of which kills every worker that runs it:
        # the chunk fails, fermion retries its items one by one, and only item 3 fails.
        results = executor.map(kill_worker_on_three, range(4), chunksize=4, timeout=WAIT * 2)
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(DaskWorkerLostError, match=r"every Dask worker that ran it died"):
            next(results)


def test_only_the_call_that_kills_its_workers_fails(command_cluster: dict[str, Any]) -> None:
    from fermion import Executor

    command_cluster["client"].wait_for_workers(2, timeout=WAIT)
    with Executor(backend="dask", address=command_cluster["address"]) as executor:
        # Submitted one by one, the calls queue on both workers; the ones that shared a
        # dead worker with call 3 are given up on by Dask too, and fermion runs them
        # again alone.
        futures = [executor.submit(kill_worker_on_three, i) for i in range(12)]
        for i, future in enumerate(futures):
            if i == 3:
                with pytest.raises(DaskWorkerLostError, match=r"run once more on its own"):
                    future.result(timeout=WAIT * 2)
            else:
                assert future.result(timeout=WAIT * 2) == i


def test_losing_the_scheduler_fails_tasks_in_flight_with_a_named_error(
    tmp_path: pathlib.Path,
) -> None:
    pytest.importorskip("distributed", reason="the dask extra is not installed here")
    from fermion.errors import DaskClusterError
    from fermion.executors._dask import DaskBackend

    port = _free_port()
    with open(tmp_path / "scheduler.log", "wb") as log:
        scheduler = subprocess.Popen(
            [
                *_dask_command("scheduler"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        backend = DaskBackend(address=f"tcp://127.0.0.1:{port}", connect_timeout=WAIT)
        try:
            task = Task(slow_square, [((1,), {})], batch=False)
            backend.submit(task)  # no workers: it waits on the scheduler
            _kill_tree(scheduler)
            with pytest.raises(DaskClusterError, match=r"cancelled by the Dask cluster .*stopped"):
                task.future.result(timeout=WAIT)
        finally:
            backend.shutdown()
    finally:
        _kill_tree(scheduler)
