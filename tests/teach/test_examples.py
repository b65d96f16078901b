"""Each example runs with one command, in its quick mode, and prints what it promises."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def _rows(output: str) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split()
        for line in output.splitlines()
        if line.split() and line.split()[0] in {"serial", "threads", "processes", "auto"}
    }


@pytest.mark.slow
def test_monte_carlo_pi_agrees_on_every_backend(tmp_path: Path) -> None:
    done = _run("monte_carlo_pi.py", cwd=tmp_path)
    rows = _rows(done.stdout)
    assert set(rows) == {"serial", "threads", "processes", "auto"}
    estimates = {row[4] for row in rows.values()}
    assert len(estimates) == 1, rows  # same seeds, same chunks: the same estimate
    assert abs(float(estimates.pop()) - 3.14159) < 0.02


@pytest.mark.slow
def test_http_fetch_checks_every_file_on_every_backend(tmp_path: Path) -> None:
    done = _run("http_fetch.py", cwd=tmp_path)
    assert re.search(r"40 files of 65536 bytes from http://127\.0\.0\.1:\d+", done.stdout)
    assert set(_rows(done.stdout)) == {"serial", "threads", "processes", "auto"}
    assert "damaged" not in done.stdout


@pytest.mark.slow
def test_dimuon_analysis_finds_the_resonances(tmp_path: Path) -> None:
    for module in ("uproot", "awkward", "matplotlib"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the dimuon example needs {module}: pip install 'fermion[examples]'")
    done = _run("dimuon_analysis.py", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert "wrote 2 files, 40000 events" in done.stdout
    assert set(_rows(done.stdout)) == {"serial", "threads", "processes"}
    peaks = dict(re.findall(r"(J/psi|Upsilon\(1S\)|Z) ([\d.]+) GeV", done.stdout))
    assert abs(float(peaks["J/psi"]) / 3.0969 - 1) < 0.03, peaks
    assert abs(float(peaks["Upsilon(1S)"]) / 9.4603 - 1) < 0.03, peaks
    assert abs(float(peaks["Z"]) / 91.1876 - 1) < 0.03, peaks
    assert sorted(p.name for p in (tmp_path / "out").glob("*.root")) == [
        "dimuons_000.root",
        "dimuons_001.root",
    ]
    assert (tmp_path / "out" / "dimuon_mass.png").stat().st_size > 10_000
