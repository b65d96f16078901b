"""Progress reporting: quiet off a terminal, a tqdm bar on one, callbacks in order."""

from __future__ import annotations

import io
import threading

import pytest

from fermion import Executor
from fermion.executors._progress import ProgressReporter, make_progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_true_is_quiet_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Executor("threads", 2, progress=True) as executor:
        assert list(executor.map(abs, range(100))) == list(range(100))
    assert capsys.readouterr().err == ""


def test_progress_true_draws_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with Executor("serial", progress=True) as executor:
        assert list(executor.imap(abs, range(250))) == list(range(250))
    output = terminal.getvalue()
    assert "250/250" in output
    assert "item/s" in output


def test_callback_reporter_is_monotonic_under_many_threads() -> None:
    seen: list[int] = []
    reporter = make_progress(lambda done, total: seen.append(done), 4000, "x")
    assert isinstance(reporter, ProgressReporter)

    def advance() -> None:
        for _ in range(1000):
            reporter.advance(1)

    threads = [threading.Thread(target=advance) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == list(range(1, 4001))


def test_progress_false_or_none_reports_nothing() -> None:
    assert make_progress(False, 10, "x") is None
    assert make_progress(None, 10, "x") is None
