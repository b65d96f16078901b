"""The corpus: every racy program is found at its marked lines, every correct one is clean.

Racy programs mark the lines a finding must name with ``# RACE-HERE``; a finding may
name no other line. They run through the session API in this process, and a few of
them through ``fermion check --races`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from race_detection import detect, marked_lines

CORPUS = Path(__file__).parent / "corpus"
RACY = sorted(p.name for p in CORPUS.glob("racy_*.py"))
CLEAN = sorted(p.name for p in CORPUS.glob("clean_*.py"))


def test_the_corpus_is_large_enough() -> None:
    assert len(RACY) >= 8
    assert len(CLEAN) > len(RACY)


@pytest.mark.parametrize("name", RACY)
def test_racy_program_is_found_at_its_marked_lines(name: str) -> None:
    path = CORPUS / name
    expected = marked_lines(path.read_text())
    assert expected, f"{name} marks no line with # RACE-HERE"
    findings = detect(path)
    assert findings, f"no race found in {name}"
    assert all(f.kind == "race" for f in findings)
    lines = {loc.line for f in findings for loc in f.locations if loc.file == str(path)}
    assert lines == expected, f"{name}: reported lines {sorted(lines)}, marked {sorted(expected)}"
    for finding in findings:
        assert len(finding.locations) == 2
        assert finding.message.startswith("data race on ")
        assert "holding" in finding.message


@pytest.mark.parametrize("name", CLEAN)
def test_correct_program_has_no_finding(name: str) -> None:
    findings = detect(CORPUS / name)
    assert findings == [], "\n".join(f.message for f in findings)


def test_findings_name_the_location_the_threads_and_the_locks() -> None:
    (finding,) = detect(CORPUS / "racy_locked_one_side.py")
    assert "data race on balance[<key>] (key 'total')" in finding.message
    assert (
        "(careless) updates (read-modify-write) it at racy_locked_one_side.py:17" in finding.message
    )
    assert "holding Lock#" in finding.message and "holding no lock" in finding.message
    threads = {loc.thread for loc in finding.locations}
    assert any("careful" in t for t in threads) and any("careless" in t for t in threads)


def test_attribute_and_global_locations_are_named_by_class_and_name() -> None:
    messages = [f.message for f in detect(CORPUS / "racy_attribute_counter.py")]
    assert any(m.startswith("data race on Stats.hits:") for m in messages)
    messages = [f.message for f in detect(CORPUS / "racy_lecture_counter.py")]
    assert any(m.startswith("data race on counter:") for m in messages)


def test_iteration_races_name_the_containers_size_and_what_each_side_does() -> None:
    messages = sorted(f.message for f in detect(CORPUS / "racy_dict_iteration_vs_insertion.py"))
    assert messages
    for message in messages:
        assert message.startswith(
            "data race on the size of start_time_by_pid (iterated while its size changes): "
        )
        assert "iterates it at racy_dict_iteration_vs_insertion.py:20 in timeout_checker" in message
    assert any(
        "inserts into it at racy_dict_iteration_vs_insertion.py:29 in start_mutants" in m
        for m in messages
    )
    assert any("resizes it at racy_dict_iteration_vs_insertion.py:34" in m for m in messages)


def test_the_lecture_counter_is_found_on_every_run() -> None:
    for _ in range(3):
        assert detect(CORPUS / "racy_lecture_counter.py")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "fermion", "check", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )


def test_cli_reports_the_lecture_counter_as_json() -> None:
    path = CORPUS / "racy_lecture_counter.py"
    result = run_cli("--races", "--format", "json", str(path))
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    races = [f for f in report["findings"] if f["kind"] == "race"]
    assert races
    assert {loc["line"] for f in races for loc in f["locations"]} == marked_lines(path.read_text())


def test_cli_finds_nothing_in_the_locked_counter() -> None:
    result = run_cli("--races", str(CORPUS / "clean_locked_counter.py"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no findings" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", [*RACY, *CLEAN])
def test_cli_agrees_with_the_session_api(name: str) -> None:
    path = CORPUS / name
    result = run_cli("--races", "--format", "json", str(path))
    findings = [f for f in json.loads(result.stdout)["findings"] if f["kind"] == "race"]
    if name.startswith("racy_"):
        assert result.returncode == 1
        assert {loc["line"] for f in findings for loc in f["locations"]} == marked_lines(
            path.read_text()
        )
    else:
        assert result.returncode == 0, result.stdout
        assert findings == []


HELPER = """\
import threading

state = {"hits": 0}


def hit():
    state["hits"] += 1


def run():
    threads = [threading.Thread(target=hit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""


def test_modules_next_to_the_script_are_instrumented_too(tmp_path: Path) -> None:
    (tmp_path / "fermion_race_helper.py").write_text(HELPER)
    script = tmp_path / "main_script.py"
    script.write_text("import fermion_race_helper\n\nfermion_race_helper.run()\n")
    sys.path.insert(0, str(tmp_path))
    try:
        findings = detect(script)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fermion_race_helper", None)
    assert {(Path(loc.file).name, loc.line) for f in findings for loc in f.locations} == {
        ("fermion_race_helper.py", 7)
    }


def test_cli_runs_a_module_with_dash_m(tmp_path: Path) -> None:
    (tmp_path / "fermion_race_mod.py").write_text(HELPER + "\n\nrun()\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fermion",
            "check",
            "--races",
            "--format",
            "json",
            "-m",
            "fermion_race_mod",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert {loc["line"] for f in findings for loc in f["locations"]} == {7}
