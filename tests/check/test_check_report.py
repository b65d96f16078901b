"""The shared report model and its three renderings."""

from __future__ import annotations

import json

import pytest

from fermion.check import Finding, Location, Report

LOC_A = Location("/w/app.py", 10, "first", "T1")
LOC_B = Location("/w/app.py", 20, "second", "T2")


def sample() -> Report:
    return Report(
        [Finding("deadlock", "two threads wait for each other", (LOC_A, LOC_B)),
         Finding("starvation", "thread T3 waited 2.0 s", (LOC_B,))],
        ["app.py", "--fast"],
        1,
    )  # fmt: skip


def test_json_follows_the_design_schema_exactly() -> None:
    data = json.loads(sample().to_json())
    assert set(data) == {"findings", "program"}
    assert data["program"] == {"argv": ["app.py", "--fast"], "exit_code": 1}
    first = data["findings"][0]
    assert set(first) == {"kind", "message", "locations"}
    assert first["locations"][0] == {
        "file": "/w/app.py",
        "line": 10,
        "function": "first",
        "thread": "T1",
    }
    assert Report.from_dict(data).findings == sample().findings


def test_sarif_is_a_2_1_0_log_with_rules_and_results() -> None:
    log = json.loads(sample().to_sarif())
    assert log["version"] == "2.1.0" and "sarif-2.1.0" in log["$schema"]
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [
        "deadlock",
        "lock-order",
        "race",
        "starvation",
        "lock-release",
    ]
    result = run["results"][0]
    assert result["ruleId"] == "deadlock" and result["level"] == "error"
    assert rules[result["ruleIndex"]]["id"] == "deadlock"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 10}
    assert result["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 20
    assert run["results"][1]["level"] == "warning"
    assert run["invocations"][0]["exitCode"] == 1


def test_text_lists_every_finding_and_location() -> None:
    text = sample().to_text()
    assert "2 finding(s) (1 deadlock, 1 starvation)" in text
    assert "at /w/app.py:10 in first [T1]" in text
    assert "program: app.py --fast (exit status 1)" in text
    assert Report().to_text().startswith("fermion check: no findings.")


def test_bad_kind_and_format_are_refused() -> None:
    with pytest.raises(
        ValueError, match="finding kind 'oops' is not one of deadlock, lock-order, race, starvation"
    ):
        Finding("oops", "m")
    with pytest.raises(
        ValueError, match="unknown report format 'xml'; use one of text, json, sarif"
    ):
        Report().render("xml")


def test_finding_round_trips_through_dict() -> None:
    finding = Finding("race", "x", [LOC_A])  # a list is accepted and stored as a tuple
    assert Finding.from_dict(json.loads(json.dumps(finding.to_dict()))) == finding
