"""grouped_bars_figure: the chart bench_auto draws; a missing matplotlib names the extra."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from fermion.errors import ExtraMissingError
from fermion.measure._plots import grouped_bars_figure, write_png

PNG = b"\x89PNG\r\n\x1a\n"


def test_grouped_bars_are_drawn_with_a_goal_line(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    figure = grouped_bars_figure(
        ["cpu", "io"],
        {"serial": [2.0, 20.0], "threads": [1.0, 1.0], "auto": [1.05, math.nan]},
        highlight="auto",
        goal=1.1,
        log=True,
        ylabel="relative time",
        title="test",
    )
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["cpu", "io"]
    assert len(axes.patches) == 5  # the NaN bar is left out
    assert [t.get_text() for t in axes.texts] == ["1.05"]  # auto's value, written on it
    assert axes.get_yscale() == "log"
    write_png(figure, tmp_path / "bars.png")
    assert (tmp_path / "bars.png").read_bytes().startswith(PNG)


def test_series_must_match_the_groups() -> None:
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=r"series 'auto' has 1 values for 2 groups"):
        grouped_bars_figure(["a", "b"], {"auto": [1.0]})
    with pytest.raises(ValueError, match="at least one series"):
        grouped_bars_figure(["a"], {})


def test_missing_matplotlib_names_the_plot_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ExtraMissingError, match=r"pip install 'fermion\[plot\]'"):
        grouped_bars_figure(["a"], {"auto": [1.0]})
