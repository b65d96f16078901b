"""``fermion check`` end to end: formats, exit statuses, usage errors, timeouts; the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fermion.cli import main

CORPUS = Path(__file__).parent / "corpus"
FAST = ["--deadlocks", "--lock-order", "--starvation"]


def fermion(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fermion", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_usage_errors_exit_with_status_2() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["check"])
    assert result.exit_code == 2 and "give a SCRIPT to run, or -m MODULE" in result.output
    result = runner.invoke(main, ["check", "no/such/script.py"])
    assert result.exit_code == 2 and "no such script: 'no/such/script.py'" in result.output
    result = runner.invoke(main, ["check", "--format", "xml", str(CORPUS / "ok_timeouts.py")])
    assert result.exit_code == 2


def test_races_flag_errors_clearly_without_the_race_detector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fermion.check import _cli

    monkeypatch.setattr(_cli, "races_available", lambda: False)
    result = CliRunner().invoke(main, ["check", "--races", str(CORPUS / "ok_timeouts.py")])
    assert result.exit_code == 2
    assert "--races needs the race detector (fermion.check._races)" in result.output


def test_sarif_report_written_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    proc = fermion(
        "check", *FAST, "--format", "sarif", "--output", str(out), str(CORPUS / "bad_abba.py")
    )
    assert proc.returncode == 1, proc.stderr
    log = json.loads(out.read_text())
    assert log["version"] == "2.1.0"
    [result] = log["runs"][0]["results"]
    assert result["ruleId"] == "deadlock"


def test_program_exit_status_passes_through(tmp_path: Path) -> None:
    script = tmp_path / "exits.py"
    script.write_text("import sys\nprint('hello', sys.argv[1:])\nsys.exit(3)\n")
    proc = fermion("check", *FAST, str(script), "--flag", "x")
    assert proc.returncode == 3
    assert "hello ['--flag', 'x']" in proc.stdout
    assert "no findings" in proc.stdout


def test_module_mode(tmp_path: Path) -> None:
    (tmp_path / "mymod.py").write_text("import threading\ne = threading.Event()\ne.wait()\n")
    proc = subprocess.run(
        [sys.executable, "-m", "fermion", "check", *FAST, "--format", "json", "-m", "mymod"],
        capture_output=True, text=True, timeout=90, check=False, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["program"]["argv"] == ["-m", "mymod"]
    [finding] = report["findings"]
    assert finding["locations"][0]["line"] == 3


def test_a_program_hung_outside_checked_waits_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    script = tmp_path / "sleeps.py"
    script.write_text("import time\ntime.sleep(600)\n")
    proc = fermion("check", *FAST, "--timeout", "1", "--format", "json", str(script))
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["program"]["exit_code"] is None
    [finding] = report["findings"]
    assert finding["kind"] == "deadlock" and "did not finish within 1 s" in finding["message"]


def test_no_findings_exit_zero_and_all_detectors_by_default() -> None:
    proc = fermion("check", str(CORPUS / "ok_rlock_reentry.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fermion check: no findings." in proc.stdout


def test_demo_deadlock_shows_the_hang_and_the_report() -> None:
    proc = fermion("demo", "deadlock", "--hang-seconds", "1")
    assert proc.returncode == 0, proc.stderr
    assert "It would hang forever" in proc.stdout or "scheduler was kind" in proc.stdout
    assert "deadlock: 5 threads wait for each other in a cycle" in proc.stdout


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_a_report_on_stdout_keeps_the_programs_output_apart(tmp_path: Path, fmt: str) -> None:
    script = tmp_path / "talks.py"
    script.write_text("print('hello from the program')\n")
    proc = fermion("check", *FAST, "--format", fmt, str(script))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # the whole of stdout is the report
    assert report["program"]["argv"] if fmt == "json" else report["version"] == "2.1.0"
    assert "hello from the program" in proc.stderr


def test_the_text_report_keeps_the_programs_output_on_stdout(tmp_path: Path) -> None:
    script = tmp_path / "talks.py"
    script.write_text("print('hello from the program')\n")
    proc = fermion("check", *FAST, str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("hello from the program\n")


def test_a_missing_module_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fermion", "check", "-m", "no_such_module_here"],
        capture_output=True, text=True, timeout=90, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Error: no module named 'no_such_module_here' to run with -m" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_the_text_report_names_a_findings_kind_once() -> None:
    proc = fermion("check", *FAST, str(CORPUS / "bad_abba.py"))
    assert proc.returncode == 1, proc.stderr
    assert "[1] deadlock: 2 threads wait for each other in a cycle:" in proc.stdout
    assert "deadlock: deadlock" not in proc.stdout
