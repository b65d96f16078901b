"""The pool's thread and its front door.

User threads never touch ``PoolState``: ``ProcessPool.submit``/``kill``/``shutdown``/
``terminate`` put a command in an inbox and write one byte to a wake-up socket; the
pool's thread waits on that socket, on every worker's result pipe and sentinel, and on
the nearest deadline, and hands each event to ``PoolState``. It completes the futures of
finished tasks last, just before it waits again: a caller woken by its result then finds
the pool's thread out of its way. The thread starts with the first task, so creating a
pool costs nothing.

Measured and left out: a submitting thread writing its task to an idle worker itself
(sparing the pool's thread one wake-up per round trip) made ``submit().result()`` faster
on 16 cores (116 against 136 µs) but slower on 2 (153 against 136 µs) and on
free-threaded 3.13t (220 against 119 µs), where the pool's thread spins on the state
lock while a descheduled submitting thread holds it.
"""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.context import BaseContext
from typing import Any

from fermion.errors import describe_exception, refused_after_shutdown
from fermion.executors._base import BatchOutcomes, Task
from fermion.executors._exit import ExitRegistry
from fermion.executors._processes import _worker
from fermion.executors._processes._state import PoolState

__all__ = ["ProcessPool"]

_SHUTDOWN_MESSAGE = str(refused_after_shutdown("the process pool"))


class _Reply:
    """A one-shot answer from the pool's thread to a waiting user thread."""

    __slots__ = ("_event", "value")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value
        self._event.set()

    def wait(self, timeout: float) -> Any:
        self._event.wait(timeout)
        return self.value


class ProcessPool:
    """A pool of worker processes run by one thread (see the module doc)."""

    def __init__(self, *, size: int, context: BaseContext, setup: _worker.WorkerSetup) -> None:
        self._lock = threading.Lock()  # guards the front door only: the fields below
        self._inbox: deque[tuple[Any, ...]] = deque()
        self._accepting = True
        self._refusal = _SHUTDOWN_MESSAGE  # what submit says once it does not accept
        self._thread: threading.Thread | None = None
        self._loop_finished = False
        self._wake_pending = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._alive_r, self._alive_w = context.Pipe(duplex=False)
        self.state = PoolState(
            size=size,
            context=context,
            setup=setup,
            alive_conn=self._alive_r,
            own_fds=self._own_fds,
        )
        self.worker_pids: tuple[int, ...] = ()  # published by the pool's thread

    # -- the front door: any thread -----------------------------------------------------

    def submit(self, task: Task) -> None:
        with self._lock:
            if not self._accepting:
                raise RuntimeError(self._refusal)
            self._inbox.append(("submit", task))
            if self._thread is None:
                self._start_thread()
        self._wake()

    def kill(self, task: Task) -> bool:
        if self._in_pool_thread():
            return self.state.kill(task)
        reply = _Reply()
        with self._lock:
            if self._thread is None or self._loop_finished:
                return False
            self._inbox.append(("kill", task, reply))
        self._wake()
        return bool(reply.wait(timeout=30.0))

    def grow(self, size: int) -> None:
        """Keep ``size`` workers from now on (more than now: the new ones start)."""
        with self._lock:
            if not self._accepting:
                return
            self._inbox.append(("grow", size))
            if self._thread is None:
                self._start_thread()
        self._wake()

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        with self._lock:
            self._accepting = False
            thread = self._thread
            if thread is not None:
                self._inbox.append(("shutdown", cancel_futures))
        if thread is None:
            self._close_pipes()
            return
        self._wake()
        if wait:
            self._join(thread)

    def terminate(self, reason: str, timeout: float = 5.0) -> None:
        """Cancel pending tasks, kill all workers now and fail their tasks; wait up to
        ``timeout`` seconds for the workers to be gone."""
        with self._lock:
            self._accepting = False
            thread = self._thread
            if thread is not None:
                self._inbox.append(("terminate", reason))
        if thread is None:
            self._close_pipes()
            return
        self._wake()
        if not self._in_pool_thread():
            thread.join(timeout)

    def statistics(self) -> dict[str, Any]:
        """A snapshot of counters (workers started/crashed, tasks completed/timed out/
        killed, functions sent) and ``worker_pids``; approximate while tasks run."""
        stats: dict[str, Any] = dict(self.state.counts)
        stats["worker_pids"] = self.worker_pids
        stats["size"] = self.state.size
        return stats

    # -- internals -------------------------------------------------------------------

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._run, name="fermion-process-pool", daemon=True)
        self._thread = thread
        _live_pools.add(self)
        thread.start()

    def _in_pool_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def _join(self, thread: threading.Thread) -> None:
        if self._in_pool_thread():
            return  # shutdown from a done-callback: the thread ends on its own
        try:
            while thread.is_alive():
                thread.join(0.1)
        except KeyboardInterrupt:
            # Ctrl-C while waiting for running tasks: stop everything now, then let the
            # interrupt go on to the caller.
            self.terminate("KeyboardInterrupt")
            raise

    def _wake(self) -> None:
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        # Full: the thread is awake anyway. Closed: the thread is gone.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _own_fds(self) -> list[int]:
        """The pool's descriptors, which a forked worker must close."""
        fds = [self._wake_r.fileno(), self._wake_w.fileno(), self._alive_w.fileno()]
        for worker in self.state.workers.values():
            for conn in (worker.handle.task_conn, worker.handle.result_conn):
                if not conn.closed:
                    fds.append(conn.fileno())
        return fds

    def _take_commands(self, woken: bool) -> None:
        """Hand the inbox to the state; ``woken``: the wake-up socket is readable."""
        with self._lock:
            self._wake_pending = False
        if woken:  # a wake-up pends at most one byte per drain: one read takes them all
            with contextlib.suppress(BlockingIOError, InterruptedError):
                self._wake_r.recv(4096)
        state = self.state
        while self._inbox:
            command = self._inbox.popleft()
            kind = command[0]
            if kind == "submit":
                state.submit(command[1])
            elif kind == "kill":
                command[2].set(state.kill(command[1]))
            elif kind == "shutdown":
                state.shutdown(command[1])
            elif kind == "terminate":
                state.terminate(command[1])
            elif kind == "grow":
                state.size = max(state.size, command[1])

    def _run(self) -> None:
        state = self.state
        reason = "the pool stopped"
        poller = _Poller(self._wake_r)
        woken = True
        try:
            while True:
                self._take_commands(woken)
                state.step()
                self.worker_pids = tuple(state.workers)
                if state.finished:
                    break
                objects = state.wait_objects()
                deadline = state.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                _report(state.take_finished())  # the tasks' arguments go now, not later
                ready = poller.wait(objects, timeout)
                woken = self._wake_r in ready
                for obj in ready:  # results first: a worker's last words before its death
                    entry = objects.get(obj)
                    if entry is not None and entry[0] == "result":
                        state.on_result_readable(entry[1])
                for obj in ready:
                    entry = objects.get(obj)
                    if entry is not None and entry[0] == "exit" and entry[1].pid in state.workers:
                        state.on_exit(entry[1])
                state.on_deadlines(time.monotonic())
        except BaseException as exc:
            reason = f"internal error in the process pool: {describe_exception(exc)}"
            with self._lock:
                if self._accepting:  # not shut down: say why it stopped
                    self._refusal = (
                        f"cannot schedule new futures: the process pool's thread stopped "
                        f"({reason}); create a new Executor"
                    )
            raise
        finally:
            with self._lock:
                self._accepting = False
                self._loop_finished = True
                leftover = list(self._inbox)
                self._inbox.clear()
            for command in leftover:
                if command[0] == "submit":
                    state.submit(command[1])
                elif command[0] == "kill":
                    command[2].set(False)
            state.close_all(reason)
            self.worker_pids = ()
            self._close_pipes()
            _live_pools.discard(self)
            _report(state.take_finished())

    def _close_pipes(self) -> None:
        self._alive_w.close()
        self._alive_r.close()
        self._wake_r.close()
        self._wake_w.close()


def _report(finished: list[tuple[Task, BatchOutcomes]]) -> None:
    """Complete the futures of finished tasks (their done-callbacks run here)."""
    for task, outcomes in finished:
        task.finish(outcomes)


class _Poller:
    """Waits for the loop's objects to be readable (like ``multiprocessing.connection.
    wait``: a closed or hung-up object is ready). One ``select.poll`` is kept while the
    state hands back the same ``wait_objects`` dict (it makes a new one whenever a
    worker comes or goes), so a wait costs one system call, not a registration per
    object as well: the loop waits twice per task."""

    def __init__(self, wake: socket.socket) -> None:
        self._wake = wake
        self._objects: dict[Any, Any] | None = None
        self._poll: Any = None
        self._by_fd: dict[int, Any] = {}

    def wait(self, objects: dict[Any, Any], timeout: float | None) -> list[Any]:
        if not _HAVE_POLL:  # pragma: no cover - Windows
            return wait([self._wake, *objects], timeout)
        if objects is not self._objects:
            self._poll = select.poll()
            self._by_fd = {}
            for obj in (self._wake, *objects):
                fd = obj if isinstance(obj, int) else obj.fileno()
                self._poll.register(fd, select.POLLIN)
                self._by_fd[fd] = obj
            self._objects = objects
        events = self._poll.poll(None if timeout is None else timeout * 1000.0)
        return [self._by_fd[fd] for fd, _ in events]


_HAVE_POLL = hasattr(select, "poll")


def _finish_live_pools(pools: list[ProcessPool]) -> None:
    """As the standard library: at exit, the tasks submitted run to their end (a script
    whose last line is ``ex.submit(print, "done")`` prints it). An exit caused by Ctrl-C,
    or a Ctrl-C during this wait, terminates the pools instead: pending tasks are
    cancelled and workers killed, so Ctrl-C still ends the program at once."""
    if isinstance(getattr(sys, "last_value", None), KeyboardInterrupt):
        for pool in pools:
            pool.terminate("the interpreter is exiting after Ctrl-C")
        return
    try:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=False)
    except KeyboardInterrupt:
        for pool in pools:
            pool.terminate("Ctrl-C while the interpreter was exiting")
        raise


_live_pools: ExitRegistry[ProcessPool] = ExitRegistry(_finish_live_pools)


def finalizer(pool: ProcessPool) -> Callable[[], None]:
    """What to run when the pool's owner is garbage-collected: a graceful shutdown."""

    def finalize() -> None:
        pool.shutdown(wait=False, cancel_futures=False)

    return finalize
