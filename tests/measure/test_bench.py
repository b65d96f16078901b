"""fermion bench: runs, table, plots and page; a missing matplotlib names the extra."""

from __future__ import annotations

import sys
from pathlib import Path

import measure_helpers as h
import pytest
from click.testing import CliRunner

from fermion.cli import main
from fermion.errors import ExtraMissingError
from fermion.measure import bench

PNG = b"\x89PNG\r\n\x1a\n"


def test_bench_runs_every_backend_and_worker_count() -> None:
    result = bench(h.nap_item, range(12), backends=("serial", "threads"), workers=(1, 3))
    assert [(r.backend, r.workers) for r in result.runs] == [
        ("serial", 1),
        ("threads", 1),
        ("threads", 3),
    ]
    assert all(len(r.spans) == 12 for r in result.runs)
    three = result.runs[2]
    assert {s.worker for s in three.spans} <= {0, 1, 2}
    assert all(0 <= s.start <= s.end for s in three.spans)
    assert three.speedup > 1.3  # sleeping tasks overlap on threads: an order of magnitude check
    text = result.table()
    assert "threads" in text and "speedup" in text


def test_bench_with_processes_and_auto() -> None:
    result = bench(h.square, range(20), backends=("processes", "auto"), workers=(2,))
    assert [r.backend for r in result.runs] == ["processes", "auto"]
    assert result.runs[1].chosen is not None
    assert "auto (" in result.table()


def test_plots_and_page_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = bench(h.nap_item, range(8), backends=("serial", "threads"), workers=(1, 2))
    result.plot(tmp_path / "speedup.png")
    result.timeline(tmp_path / "timeline.png")
    result.html(tmp_path / "bench.html")
    assert (tmp_path / "speedup.png").read_bytes().startswith(PNG)
    assert (tmp_path / "timeline.png").read_bytes().startswith(PNG)
    page = (tmp_path / "bench.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<table>" in page


def test_missing_matplotlib_names_the_plot_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = bench(h.square, range(3), backends=("serial",), workers=(1,))
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ExtraMissingError, match=r"pip install 'fermion\[plot\]'") as caught:
        result.plot(tmp_path / "x.png")
    assert caught.value.extra == "plot" and caught.value.package == "matplotlib"


def test_bench_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match=r"unknown backend\(s\) \['gpu'\] for bench"):
        bench(h.square, [1], backends=("gpu",))
    with pytest.raises(ValueError, match=r"worker counts must be positive integers, got \[0\]"):
        bench(h.square, [1], workers=(0,))
    with pytest.raises(ValueError, match=r"needs at least one item"):
        bench(h.square, [])


def test_bench_command_writes_table_plot_timeline_and_page(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "speed.png"
    page = tmp_path / "bench.html"
    result = CliRunner().invoke(
        main,
        [
            "bench", "measure_helpers:nap_item", "--items", "range(6)",
            "--backends", "serial,threads", "--workers", "1,2",
            "--plot", str(plot), "--html", str(page),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "speedup" in result.output
    assert plot.read_bytes().startswith(PNG)
    assert (tmp_path / "speed-timeline.png").read_bytes().startswith(PNG)
    assert page.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backends", "serial,gpu"], "unknown backend(s) gpu"),
        (["--workers", "1,x"], "is not a comma-separated list of positive integers"),
        (["--workers", "0"], "is not a comma-separated list of positive integers"),
    ],
)
def test_bench_command_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["bench", "measure_helpers:square", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_the_table_says_when_other_programs_took_the_cores() -> None:
    from dataclasses import replace

    from fermion.measure import MachineLoad

    result = bench(h.square, range(50), backends=("serial",), workers=(1,))
    assert result.load is not None  # measured over the whole benchmark
    busy = replace(result, load=MachineLoad(cores=2, wall=1.0, busy_cpu=2.0, own_cpu=1.0))
    assert "machine: another program used 1.0 of 2 cores meanwhile" in busy.table()
    quiet = replace(result, load=MachineLoad(cores=2, wall=1.0, busy_cpu=1.05, own_cpu=1.0))
    assert "machine: quiet machine" in quiet.table()
