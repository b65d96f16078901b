"""The corpus under ``fermion check``: every bad program reported at its marked lines,
every correct program without a single finding.

All programs run concurrently (a few at a time) in child processes with a timeout, in
one module-scoped fixture; each test then checks one program's report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).parent / "corpus"
MARKERS = {
    "deadlock": "# DEADLOCK-HERE",
    "lock-order": "# LOCK-ORDER-HERE",
    "starvation": "# STARVATION-HERE",
}
BAD = sorted(p.name for p in CORPUS.glob("bad_*.py"))
OK = sorted(p.name for p in CORPUS.glob("ok_*.py"))
TIMEOUT_S = 60


def run_check(script: Path) -> tuple[int, dict[str, Any], str]:
    command = [
        sys.executable, "-m", "fermion", "check", "--deadlocks", "--lock-order", "--starvation",
        "--format", "json", "--timeout", "30", str(script),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    try:
        # The program's own output precedes the report; the report is the last JSON object.
        start = proc.stdout.index('{\n  "findings"')
        report = json.loads(proc.stdout[start:])
    except ValueError as exc:
        raise AssertionError(
            f"no JSON report for {script.name}:\n{proc.stdout}\n{proc.stderr}"
        ) from exc
    return proc.returncode, report, proc.stderr


@pytest.fixture(scope="module")
def reports() -> dict[str, tuple[int, dict[str, Any], str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_check, CORPUS / name) for name in BAD + OK}
        return {name: future.result() for name, future in futures.items()}


def marked_lines(script: Path) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {kind: set() for kind in MARKERS}
    for number, line in enumerate(script.read_text().splitlines(), 1):
        for kind, marker in MARKERS.items():
            if marker in line:
                out[kind].add(number)
    return out


def test_the_corpus_is_balanced() -> None:
    assert len(BAD) >= 14
    assert len(OK) >= len(BAD)


@pytest.mark.parametrize("name", BAD)
def test_bad_program_is_reported_at_its_marked_lines(
    name: str, reports: dict[str, tuple[int, dict[str, Any], str]]
) -> None:
    script = CORPUS / name
    exit_code, report, stderr = reports[name]
    expected = {kind: lines for kind, lines in marked_lines(script).items() if lines}
    assert expected, f"{name} has no marker"
    found: dict[str, set[int]] = {}
    for finding in report["findings"]:
        lines = {loc["line"] for loc in finding["locations"] if Path(loc["file"]).name == name}
        found.setdefault(finding["kind"], set()).update(lines)
    assert found == expected, f"{name}: {json.dumps(report, indent=1)}\n{stderr}"
    assert exit_code == 1
    assert report["program"]["argv"] == [str(script)]


@pytest.mark.parametrize("name", OK)
def test_correct_program_has_no_finding(
    name: str, reports: dict[str, tuple[int, dict[str, Any], str]]
) -> None:
    exit_code, report, stderr = reports[name]
    assert report["findings"] == [], f"{name}: {json.dumps(report, indent=1)}\n{stderr}"
    assert exit_code == 0, stderr
    assert report["program"]["exit_code"] == 0
