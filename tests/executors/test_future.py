"""The futures fermion returns: standard ``concurrent.futures.Future`` semantics, and
waits in the main thread that signals interrupt (free-threaded builds lose a signal that
lands as the main thread starts an untimed lock wait; see ``fermion.executors._future``)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import sysconfig
import textwrap
import threading
from concurrent.futures import CancelledError, Future, InvalidStateError

import pytest

import fermion
from fermion.executors._future import Future as FermionFuture
from fermion.executors._future import slices_waits

ROUNDS = 30

# Each round: a task that blocks until told, a "ready" line, then result() in the main
# thread; the parent signals at once, and the handler's exception must end the wait.
_CHILD = textwrap.dedent(
    """
    import signal, sys, threading
    import fermion

    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted

    signal.signal(signal.SIGUSR1, interrupt)
    with fermion.Executor("threads", workers=1) as ex:
        for _ in range(int(sys.argv[1])):
            gate = threading.Event()
            future = ex.submit(gate.wait, 60)
            sys.stdin.readline()
            try:
                print("ready", flush=True)  # the signal may land here already
                future.result()
            except Interrupted:
                print("interrupted", flush=True)
            else:
                print("not interrupted", flush=True)
            gate.set()
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")
@pytest.mark.timeout(120)
def test_a_signal_interrupts_result_in_the_main_thread_every_time() -> None:
    """On 3.13t before the fix, 7 of 30 such signals waited for the task (60 s)."""
    answers = []
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(ROUNDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        try:
            for _ in range(ROUNDS):
                child.stdin.write("go\n")
                child.stdin.flush()
                assert child.stdout.readline() == "ready\n"
                child.send_signal(signal.SIGUSR1)
                # A lost signal leaves the child waiting for its task (60 s), past the
                # test's timeout; a handled one answers at once.
                answers.append(child.stdout.readline().strip())
            child.stdin.close()
            assert child.wait(timeout=30) == 0
        finally:
            if child.poll() is None:
                child.kill()
    assert answers == ["interrupted"] * ROUNDS


def test_executors_return_fermion_futures_that_are_standard_futures() -> None:
    with fermion.Executor("threads", workers=1) as ex:
        future = ex.submit(abs, -3)
        assert isinstance(future, FermionFuture) and isinstance(future, Future)
        assert future.result(timeout=30) == 3


def test_its_repr_and_state_errors_read_as_the_standard_librarys() -> None:
    future: FermionFuture[int] = FermionFuture()
    assert re.fullmatch(r"<Future at 0x[0-9a-f]+ state=pending>", repr(future))
    future.set_result(1)
    with pytest.raises(InvalidStateError, match=r"FINISHED: <Future at 0x[0-9a-f]+ state=finished"):
        future.set_result(2)


def test_result_with_a_timeout_still_raises_timeout_error_when_not_done() -> None:
    future: FermionFuture[int] = FermionFuture()
    with pytest.raises(TimeoutError):
        future.result(timeout=0.01)
    with pytest.raises(TimeoutError):
        future.exception(timeout=0.01)
    assert not future.done()


def test_a_task_that_raised_timeout_error_gives_it_back_not_a_wait_timeout() -> None:
    future: FermionFuture[int] = FermionFuture()
    raised = TimeoutError("the task's own")
    future.set_exception(raised)
    with pytest.raises(TimeoutError) as caught:
        future.result(timeout=5)
    assert caught.value is raised
    assert future.exception(timeout=5) is raised


def test_a_result_set_by_another_thread_ends_the_wait() -> None:
    future: FermionFuture[str] = FermionFuture()
    started = threading.Event()

    def finish() -> None:
        started.wait(timeout=30)
        future.set_result("done")

    thread = threading.Thread(target=finish)
    thread.start()
    started.set()
    assert future.result(timeout=30) == "done"
    thread.join(timeout=30)


def test_a_cancelled_future_raises_cancelled_error() -> None:
    future: FermionFuture[int] = FermionFuture()
    assert future.cancel()
    with pytest.raises(CancelledError):
        future.result(timeout=5)
    with pytest.raises(CancelledError):
        future.exception(timeout=5)


def test_only_the_main_thread_of_a_free_threaded_build_slices_its_waits() -> None:
    seen: list[bool] = []
    thread = threading.Thread(target=lambda: seen.append(slices_waits()))
    thread.start()
    thread.join(timeout=30)
    assert seen == [False]  # other threads never run signal handlers
    assert slices_waits() is bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


# -- done-callbacks that raise ------------------------------------------------------------


def _callbacks_around(future: FermionFuture[int], raised: BaseException) -> list[str]:
    """A raising callback between two that record themselves; the record."""
    ran: list[str] = []

    def raising(_: object) -> None:
        ran.append("raising")
        raise raised

    future.add_done_callback(lambda _: ran.append("before"))
    future.add_done_callback(raising)
    future.add_done_callback(lambda _: ran.append("after"))
    return ran


@pytest.mark.parametrize("raised", [ValueError("v"), SystemExit("s"), KeyboardInterrupt("k")])
def test_outside_the_main_thread_a_raising_callback_is_logged_and_the_rest_run(
    raised: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    future: FermionFuture[int] = FermionFuture()
    ran = _callbacks_around(future, raised)
    escaped: list[BaseException] = []

    def complete() -> None:
        try:
            future.set_result(1)
        except BaseException as exc:  # what would have ended this thread
            escaped.append(exc)

    with caplog.at_level("ERROR", logger="concurrent.futures"):
        thread = threading.Thread(target=complete)
        thread.start()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert escaped == []
    assert ran == ["before", "raising", "after"]
    [record] = caplog.records
    assert record.getMessage() == f"exception calling callback for {future!r}"
    assert record.exc_info is not None and record.exc_info[1] is raised


def test_in_the_main_thread_an_interrupt_from_a_callback_goes_on_after_the_rest_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The main thread is where the user's Ctrl-C lands: it is raised again, as the
    standard library would, but only once every callback ran."""
    assert threading.current_thread() is threading.main_thread()
    future: FermionFuture[int] = FermionFuture()
    interrupt = KeyboardInterrupt("ctrl-c")
    ran = _callbacks_around(future, interrupt)
    with pytest.raises(KeyboardInterrupt, match="ctrl-c"):
        future.set_result(1)
    assert ran == ["before", "raising", "after"]
    assert future.result(timeout=0) == 1
    assert caplog.records == []


def test_in_the_main_thread_an_exception_from_a_callback_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    future: FermionFuture[int] = FermionFuture()
    ran = _callbacks_around(future, ValueError("v"))
    with caplog.at_level("ERROR", logger="concurrent.futures"):
        future.set_result(1)
    assert ran == ["before", "raising", "after"]
    [record] = caplog.records
    assert record.getMessage() == f"exception calling callback for {future!r}"
