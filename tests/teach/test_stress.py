"""fermion stress: failure rates of concurrent trials, and its limits on GIL builds."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from fermion.cli import main
from fermion.teach._stress import free_threaded, stress, stress_script
from fermion.teach.tour._programs import COUNTERS
from fermion.teach.tour._race import counter_trial


def call_between_trial(threads: int, times: int = 20_000) -> tuple[int, int]:
    """The lecture's counter with one Python call between the read and the write."""
    box = {"n": 0}
    start = threading.Barrier(threads)

    def add_one(value: int) -> int:
        return value + 1

    def run() -> None:
        start.wait(timeout=30)
        for _ in range(times):
            box["n"] = add_one(box["n"])

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    return box["n"], threads * times


def test_counts_failed_runs_and_lost_updates() -> None:
    result = stress(lambda threads: (threads, 2 * threads), runs=5, threads=4)
    assert result.failures == 5 and result.failure_rate == 1.0
    assert result.lost_fraction == pytest.approx(0.5)
    assert "observed 4, expected 8" in result.examples[0]
    assert "5/5 runs failed" in result.to_text()


def test_a_raising_trial_is_a_failure_and_a_passing_one_is_not() -> None:
    calls = iter(range(10))

    def trial(threads: int) -> None:
        if next(calls) % 2:
            raise AssertionError("lost an update")

    result = stress(trial, runs=10, threads=2)
    assert result.failures == 5
    assert result.examples[0] == "AssertionError: lost an update"
    clean = stress(lambda threads: True, runs=3, threads=2)
    assert clean.failures == 0 and "does not prove the code safe" in clean.to_text()


def test_restores_the_switch_interval() -> None:
    before = sys.getswitchinterval()
    stress(lambda threads: None, runs=2, threads=1, switch_interval=1e-5)
    assert sys.getswitchinterval() == before


def test_one_call_between_read_and_write_loses_updates() -> None:
    result = stress(call_between_trial, runs=10, threads=4)
    assert result.failures >= 1, result.to_text()
    assert result.lost_fraction is not None and result.lost_fraction > 0


@pytest.mark.skipif(not free_threaded(), reason="bare += loses updates only without the GIL")
def test_free_threaded_build_loses_bare_increments() -> None:
    _, source = COUNTERS["unsafe_counter"]  # the lecture's `counter += 1` on a global
    bare_trial = counter_trial(source, "unsafe_counter.py")
    result = stress(bare_trial, runs=20, threads=4)  # enough that a loaded machine loses some
    assert result.failures >= 1, result.to_text()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runs": 0}, "runs must be a positive integer"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"switch_interval": 0}, "switch_interval must be a positive number"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stress(lambda threads: None, **kwargs)  # type: ignore[arg-type]


def test_a_trial_returning_something_else_is_an_error() -> None:
    with pytest.raises(TypeError, match="must return None, a bool or"):
        stress(lambda threads: "oops", runs=1, threads=1)


def test_stress_script_counts_failing_runs(tmp_path: Path) -> None:
    script = tmp_path / "flaky.py"
    script.write_text("import sys\nsys.exit(3 if len(sys.argv) > 1 else 0)\n")
    assert stress_script(str(script), runs=3).failures == 0
    failing = stress_script(str(script), ["x"], runs=3)
    assert failing.failures == 3 and "exited with status 3" in failing.examples[0]
    with pytest.raises(FileNotFoundError, match="no script at"):
        stress_script(str(tmp_path / "missing.py"))


def test_cli_runs_a_trial_function(tmp_path: Path) -> None:
    script = tmp_path / "trials.py"
    script.write_text(
        "def lossy(threads):\n    return threads - 1, threads\n\n\ndef fine(threads):\n    return True\n"
    )
    runner = CliRunner()
    result = runner.invoke(main, ["stress", "--runs", "3", "--threads", "2", f"{script}:lossy"])
    assert result.exit_code == 1, result.output
    assert "3/3 runs failed" in result.output and "lost 3 of 6 expected" in result.output
    result = runner.invoke(main, ["stress", "--runs", "2", f"{script}:fine"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["stress", f"{script}:missing"])
    assert result.exit_code == 2 and "has no function 'missing'" in result.output


def test_demo_race_shows_stress_and_detector_side_by_side() -> None:
    result = CliRunner().invoke(main, ["demo", "race", "--runs", "2", "--threads", "2"])
    assert result.exit_code == 0, result.output
    rows = {
        line.split()[0]: line
        for line in result.output.splitlines()
        if line.startswith(("unsafe", "locked"))
    }
    assert "x 20000 increments" in result.output  # the programs' own TIMES
    assert "RACE (line 12)" in rows["unsafe_counter"]
    assert "RACE (line 16)" in rows["unsafe_call_counter"]
    assert rows["locked_counter"].endswith("no race")
    assert "TIMES = 20_000" in result.output  # the listing shows what the stress ran
