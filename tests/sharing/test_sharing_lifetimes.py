"""Segments through the pool's codec between real processes, and what cleans them up:
the receiver, the sender after a worker dies, process exit, Ctrl-C, SIGTERM."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _sharing_children as children
import numpy as np
import pytest

from fermion.executors._processes import _codec
from fermion.sharing import _connection, _segments

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /dev/shm")

START_METHODS = [m for m in ("forkserver", "spawn") if m in multiprocessing.get_all_start_methods()]
HERE = Path(__file__).parent


def _segments_of(pid: int) -> list[str]:
    return sorted(n for n in os.listdir(_segments.SHM_DIR) if n.startswith(f"fermion-{pid}-"))


def _wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _stop(process: Any) -> None:
    process.join(30)
    if process.is_alive():
        process.kill()
        process.join(10)


@pytest.mark.parametrize("method", START_METHODS)
def test_arguments_and_results_travel_through_shared_memory(method: str) -> None:
    context = multiprocessing.get_context(method)
    here, there = context.Pipe()
    worker = context.Process(target=children.echo_messages, args=(there, 1))
    worker.start()
    there.close()
    before = _connection.statistics()
    big = np.arange(1 << 18, dtype=np.float64)  # 2 MiB: above the 1 MiB threshold
    small = np.arange(10.0)
    _codec.send(here, _codec.encode({"big": big, "small": small}))
    assert here.poll(60)
    answer = _codec.recv(here)
    _stop(worker)
    after = _connection.statistics()
    assert after["shared_bytes"] - before["shared_bytes"] == big.nbytes
    assert after["inband_bytes"] - before["inband_bytes"] == small.nbytes
    # The worker saw the values rebuilt on shared memory (no private copy), read-only
    # (other tasks may share the copy); small ones came through the pipe, writable.
    assert answer["facts"]["big"] == (float(big.sum()), False, False)
    assert answer["facts"]["small"] == (45.0, True, False)
    doubled = answer["double"]["big"]
    assert np.array_equal(doubled, big * 2) and doubled.flags.writeable
    assert _segments_of(worker.pid) == []  # the result segment was unlinked on arrival
    assert [n for n in _segments_of(os.getpid()) if "-b-" in n] == []  # the worker unlinked it


def test_a_killed_worker_leaves_nothing_after_release() -> None:
    context = multiprocessing.get_context(START_METHODS[0])
    here, there = context.Pipe()
    worker = context.Process(target=children.make_segment_then_hang, args=(there, 1 << 20))
    worker.start()
    try:
        assert here.poll(60)
        name = here.recv()
        # An argument it will never map, as the pool would have sent it a task.
        _codec.send(here, _codec.encode(np.ones(1 << 18)))
        assert _segments.segment_exists(name)
        assert len(_segments_of(os.getpid())) >= 1
    finally:
        worker.kill()
        _stop(worker)
    assert worker.exitcode == -signal.SIGKILL
    _codec.release_worker_segments(worker.pid, here)
    assert not _segments.segment_exists(name)
    assert [n for n in _segments_of(os.getpid()) if "-b-" in n] == []
    assert _connection.statistics()["pending_segments"] == 0


def test_a_segment_gone_before_mapping_fails_loudly_and_leaks_nothing() -> None:
    transport_names = _segments.SegmentNames(_segments.new_prefix())
    name = transport_names.next()

    class Pipe:
        frames: list[bytes] = []

        def send_bytes(self, buf: Any) -> None:
            self.frames.append(bytes(buf))

        def recv_bytes(self) -> bytes:
            return self.frames.pop(0)

        def recv_bytes_into(self, buf: Any) -> int:
            data = self.frames.pop(0)
            buf[: len(data)] = data
            return len(data)

    import pickle

    from fermion.sharing import SharedBuffer

    pipe = Pipe()
    pipe.send_bytes(pickle.dumps([SharedBuffer(name, 8)]))
    with pytest.raises(FileNotFoundError, match=f"segment {name!r} no longer exists"):
        _connection.recv_buffers(pipe, 1)


def _run_script(mode: str) -> subprocess.Popen[str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.Popen(
        [sys.executable, str(HERE / "_sharing_script.py"), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _ready_line(process: subprocess.Popen[str]) -> tuple[int, int]:
    assert process.stdout is not None
    line = process.stdout.readline().split()
    assert line[:1] == ["ready"], process.communicate(timeout=30)
    return int(line[1]), int(line[2])


@pytest.mark.parametrize("mode", ["exit", "ctrl-c", "sigterm"])
def test_everything_is_unlinked_when_the_caller_exits(mode: str) -> None:
    process = _run_script("exit" if mode == "exit" else "wait")
    try:
        pid, child_pid = _ready_line(process)
        assert _segments_of(pid)  # it does hold segments now
        if mode == "ctrl-c":
            process.send_signal(signal.SIGINT)
        elif mode == "sigterm":
            # Its child's second result, waiting in the pipe, exists (at normal exit and
            # Ctrl-C, multiprocessing stops daemonic children before the release runs).
            _wait_until(lambda: any(f"-w{child_pid}-" in n for n in _segments_of(pid)))
            process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate("go\n", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    if mode == "ctrl-c":
        assert "KeyboardInterrupt" in stderr
    elif mode == "sigterm":
        assert process.returncode == -signal.SIGTERM, stderr  # it still dies of SIGTERM
    else:
        assert process.returncode == 0, stderr
    assert "Warning" not in stderr  # no resource_tracker noise
    assert _segments_of(pid) == []
    assert _segments_of(child_pid) == []


def test_a_sigterm_handler_of_the_program_is_left_alone() -> None:
    script = (
        "import signal, sys, fermion\n"
        "def mine(signum, frame): pass\n"
        "signal.signal(signal.SIGTERM, mine)\n"
        "kept = fermion.shared_array(1024)\n"
        "sys.exit(0 if signal.getsignal(signal.SIGTERM) is mine else 1)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_copies_follow_changing_sizes_and_many_buffers_per_message() -> None:
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in START_METHODS else "spawn"
    )
    here, there = context.Pipe()
    sizes = [[2], [2, 3], [5], [1, 1, 1], [9], [2], [3, 2]]  # MiB per buffer, per message
    worker = context.Process(target=children.echo_messages, args=(there, len(sizes)))
    worker.start()
    there.close()
    try:
        before = _connection.statistics()
        for round_, message_sizes in enumerate(sizes):
            arrays = {
                f"a{i}": np.full(mib << 17, float(10 * round_ + i))
                for i, mib in enumerate(message_sizes)
            }
            _codec.send(here, _codec.encode(arrays))
            assert here.poll(60)
            facts = _codec.recv(here)["facts"]
            # Every buffer arrives with this message's bytes, never a previous one's.
            assert {k: v[0] for k, v in facts.items()} == {
                k: float(a.sum()) for k, a in arrays.items()
            }
        after = _connection.statistics()
        assert after["segments_recycled"] > before["segments_recycled"]
        # Free segments are trimmed: a few stay warm, not one per buffer ever sent.
        assert after["free_segment_bytes"] <= 4 * 9 * (1 << 20) + 4 * (1 << 20)
    finally:
        _stop(worker)
        here.close()
    assert _connection.statistics()["segment_bytes"] == 0  # closed connection: given back
