"""The tour's parts, fast: the runner's failure isolation, the HTML writer, plots
without matplotlib, the starvation measurement and the counter trials."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fermion.cli import main
from fermion.measure import CpuSample, MachineLoad
from fermion.teach.tour import SectionResult, _plots, _starvation, _summary, run_tour
from fermion.teach.tour._html import write_html
from fermion.teach.tour._programs import COUNTERS
from fermion.teach.tour._race import counter_trial
from fermion.teach.tour._runner import TourReport
from fermion.teach.tour._section import Image, TourContext


def test_unknown_section_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown tour section\(s\) 'nope'; choose from scaling, gil, overhead, race",
    ):
        run_tour(tmp_path, only=["nope"], echo=lambda text: None)


def test_cli_refuses_an_unknown_section(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["tour", "--only", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "'nope' is not one of" in result.output


def test_one_section_runs_alone_and_writes_the_report(tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_tour(tmp_path, quick=True, only=["starvation"], echo=lines.append)
    assert report.ok, report.sections[0].failures
    assert [s.key for s in report.sections] == ["starvation"]
    assert "\n[1/1] Starvation: a readers-first RWLock vs the fair policy" in lines
    saved = json.loads((tmp_path / "tour.json").read_text(encoding="utf-8"))
    policies = [p["policy"] for p in saved["sections"][0]["data"]["policies"]]
    assert policies == ["readers", "fair", "writers"]
    assert (tmp_path / "tour.txt").read_text(encoding="utf-8").startswith("fermion tour --quick")
    assert 'id="starvation"' in (tmp_path / "index.html").read_text(encoding="utf-8")


def test_a_relative_out_folder_works_for_the_checked_programs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default --out is relative ("fermion-tour"), while the checked programs run with
    # their own folder as working directory: the tour must hand them absolute paths.
    monkeypatch.chdir(tmp_path)
    report = run_tour("relative-out", quick=True, only=["deadlock"], echo=lambda text: None)
    assert report.ok, report.sections[0].failures
    assert (tmp_path / "relative-out" / "index.html").exists()


def test_a_failed_step_is_reported_and_the_section_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _starvation.measure_policy

    def broken_for_fair(policy: str, **options: object) -> _starvation.PolicyRun:
        if policy == "fair":
            raise OSError("simulated failure of the fair run")
        return real(policy, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(_starvation, "measure_policy", broken_for_fair)
    report = run_tour(tmp_path, quick=True, only=["starvation"], echo=lambda text: None)
    section = report.sections[0]
    assert not report.ok
    assert len(section.failures) == 1
    assert section.failures[0].startswith(
        'the run with RWLock(policy="fair") failed: OSError: simulated failure of the fair run'
    )
    assert [p["policy"] for p in section.data["policies"]] == ["readers", "writers"]
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert 'data-ok="false"' in page
    assert "simulated failure of the fair run" in page


def test_cli_exit_status_is_1_when_a_step_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(policy: str, **options: object) -> _starvation.PolicyRun:
        raise OSError("simulated")

    monkeypatch.setattr(_starvation, "measure_policy", broken)
    result = CliRunner().invoke(
        main, ["tour", "--quick", "--only", "starvation", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "FAILED" in result.output


def test_without_matplotlib_plots_are_skipped_with_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not _plots.plotting_available()
    section = SectionResult("demo", "Demo")
    context = TourContext(out=tmp_path)
    assert not context.save_plot(section, "demo.png", "a plot", lambda figure: None)
    assert section.images == []
    assert section.notes == [
        "plots skipped: matplotlib is not installed; install the 'plot' extra with "
        "pip install 'fermion[plot]' and run the tour again"
    ]
    assert not (tmp_path / "demo.png").exists()


def test_html_escapes_text_and_shows_failures_notes_and_images(tmp_path: Path) -> None:
    section = SectionResult("race", "The <race>")
    section.say("a < b & c")
    section.show("x = '<tag>'")
    section.note("a note")
    section.fail("a step", "it broke")
    section.images.append(Image("plot.png", "A plot"))
    report = TourReport(out=tmp_path, quick=True, machine="test machine", started="now")
    report.sections.append(section)
    write_html(report, tmp_path / "index.html")
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<h2>1. The &lt;race&gt;</h2>" in page
    assert "<p>a &lt; b &amp; c</p>" in page
    assert "<pre>x = &#x27;&lt;tag&gt;&#x27;</pre>" in page
    assert '<p class="failed">a step failed: it broke</p>' in page
    assert '<p class="note">a note</p>' in page
    assert '<img src="plot.png" alt="A plot">' in page


def test_fair_policy_lets_every_write_in_while_readers_overlap() -> None:
    for _ in range(3):
        result = _starvation.measure_policy("fair", readers=4, writes=3, give_up=5.0)
        assert result.writes_done == 3, result
        assert result.reads > 0


def test_locked_counter_trial_never_loses_an_update() -> None:
    _, source = COUNTERS["locked_counter"]
    trial = counter_trial(source, "locked_counter.py", 5_000)
    for _ in range(5):
        observed, expected = trial(4)
        assert observed == expected == 20_000


def test_unsafe_call_counter_trial_counts_what_it_expected() -> None:
    _, source = COUNTERS["unsafe_call_counter"]
    observed, expected = counter_trial(source, "unsafe_call_counter.py", 1_000)(2)
    assert expected == 2_000
    assert 0 < observed <= 2_000  # updates may be lost, never invented


def _sampler(others: float, own: float = 0.3) -> Callable[[], CpuSample]:
    """CPU counters of a machine where other programs keep ``others`` of 2 cores busy."""

    def sample() -> CpuSample:
        now = time.monotonic()
        return CpuSample(now, 2, (others + own) * now, own * now)

    return sample


def test_a_quiet_machine_gets_no_busy_notice(tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_tour(
        tmp_path, quick=True, only=["mutex"], echo=lines.append, load_sampler=_sampler(0.0)
    )
    assert report.ok, report.sections[0].failures
    assert report.sections[0].load is not None and not report.sections[0].load.busy
    assert report.sections[0].busy_notice is None
    assert not any("busy" in line.lower() for line in lines)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert 'class="busy"' not in page
    assert "Quiet machine: other programs used 0.0 of 2 cores on average during the tour." in page


def test_a_busy_machine_is_said_in_the_terminal_and_the_report(tmp_path: Path) -> None:
    lines: list[str] = []
    run_tour(tmp_path, quick=True, only=["mutex"], echo=lines.append, load_sampler=_sampler(1.7))
    notice = (
        "Busy machine: other programs used 1.7 of 2 cores during this section: the timings "
        "are slower and the speedups lower than this machine can give."
    )
    assert f"  {notice}" in lines
    saved = json.loads((tmp_path / "tour.json").read_text(encoding="utf-8"))
    assert saved["sections"][0]["busy_notice"] == notice
    assert saved["load"]["busy"] is True
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert f'<p class="busy">{notice}</p>' in page
    assert "The machine was busy: other programs used 1.7 of 2 cores" in page


@pytest.mark.slow
@pytest.mark.timeout(300)  # the hogs slow the tour's start-up too (3.13t: tens of seconds)
def test_under_two_cpu_hogs_the_tour_says_the_machine_was_busy(
    tmp_path: Path, cpu_hogs: int
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fermion",
            "tour",
            "--quick",
            "--only",
            "gil",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    saved = json.loads((tmp_path / "tour.json").read_text(encoding="utf-8"))
    loads = (saved["load"], saved["sections"][0]["load"])
    assert saved["sections"][0]["load"]["busy"] is True, loads
    assert "  Busy machine: " in done.stdout, loads
    assert "The machine was busy: other programs used" in done.stdout, loads
    assert 'class="busy"' in (tmp_path / "index.html").read_text(encoding="utf-8")


@dataclass
class _Advice:
    backend: str
    workers: int
    speedup: float


def _measured(speedup: float, others: float, busy: bool) -> dict[str, Any]:
    run = {"workload": "cpu", "backend": "processes", "workers": 2, "speedup": speedup}
    return {
        "runs": [{**run, "others": others, "busy": busy}],
        "load": MachineLoad(cores=2, wall=10.0, busy_cpu=10.0 + others * 10, own_cpu=10.0),
    }


def test_summary_explains_a_prediction_above_a_busy_measurement() -> None:
    line = _summary._compare(
        "CPU", _Advice("processes", 2, 1.94), "cpu", _measured(1.40, 1.7, True)
    )
    assert line == (
        "CPU: advise predicted 1.94x on processes x 2, section 1 measured 1.40x on processes "
        "x 2: other programs used 1.7 of 2 cores while it ran, and the prediction is for this "
        "machine with its cores free; run the tour on a quiet machine to see the predicted "
        "speedup."
    )


def test_summary_calls_a_miss_on_a_quiet_machine_the_model_s_error() -> None:
    line = _summary._compare(
        "CPU", _Advice("processes", 2, 1.94), "cpu", _measured(1.40, 0.1, False)
    )
    assert line is not None
    assert line.endswith(
        "other programs used only 0.1 of 2 cores while it ran, so this is the cost model's "
        "error: it predicts from one profiled call, and misjudged this workload here by 1.39x."
    )
    agree = _summary._compare("CPU", _Advice("processes", 2, 1.9), "cpu", _measured(1.8, 0, False))
    assert agree is not None and agree.endswith(": they agree.")
    other = _summary._compare("CPU", _Advice("processes", 4, 1.9), "cpu", _measured(1.8, 0, False))
    assert other is not None
    assert other.endswith("section 1 did not try 4 workers, so the two do not compare.")
