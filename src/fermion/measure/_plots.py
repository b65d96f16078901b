"""Drawing benchmark results with matplotlib (the ``plot`` extra), without pyplot:
a Figure drawn on an Agg canvas, so no global state and no display is touched."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fermion.errors import ExtraMissingError

if TYPE_CHECKING:
    from fermion.measure._bench import BenchResult

__all__ = ["grouped_bars_figure", "plot_speedup", "plot_timeline", "png_bytes", "write_png"]


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ExtraMissingError.for_feature(
            "plotting benchmark results", "plot", "matplotlib"
        ) from None
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def speedup_figure(result: BenchResult) -> Any:
    figure = _figure(7, 4.5)
    axes = figure.add_subplot()
    counts = sorted({run.workers for run in result.runs} | {1})
    axes.plot(counts, counts, linestyle="--", color="grey", label="ideal (linear)")
    axes.axhline(1.0, color="black", linewidth=0.8, label="serial")
    for backend in dict.fromkeys(run.backend for run in result.runs if run.backend != "serial"):
        runs = sorted((r for r in result.runs if r.backend == backend), key=lambda r: r.workers)
        axes.plot(
            [r.workers for r in runs],
            [r.speedup for r in runs],
            marker="o",
            linewidth=2,
            label=backend,
        )
    axes.set_xlabel("workers")
    axes.set_ylabel("speedup over serial")
    axes.set_xticks(counts)
    axes.set_title(f"{result.function}: {result.items} items, {result.cpus} cores")
    axes.grid(True, alpha=0.3)
    axes.legend()
    return figure


def timeline_figure(result: BenchResult) -> Any:
    largest: dict[str, Any] = {}
    for run in result.runs:
        if run.backend not in largest or run.workers > largest[run.backend].workers:
            largest[run.backend] = run
    runs = list(largest.values())
    rows = max(1, len(runs))
    figure = _figure(9, 1.2 + 1.6 * rows)
    end = max((s.end for run in runs for s in run.spans), default=1.0)
    for index, run in enumerate(runs):
        axes = figure.add_subplot(rows, 1, index + 1)
        workers = max((s.worker for s in run.spans), default=0) + 1
        colours = ["tab:blue", "tab:orange"]
        for span in run.spans:
            axes.broken_barh(
                [(span.start, max(span.end - span.start, end / 2000))],
                (span.worker - 0.4, 0.8),
                facecolors=colours[span.worker % 2],
                edgecolor="white",
                linewidth=0.5,
            )
        axes.set_yticks(range(workers))
        axes.set_yticklabels([f"w{n}" for n in range(workers)])
        axes.set_ylim(-0.6, workers - 0.4)
        axes.set_xlim(0, end * 1.02)
        axes.set_title(
            f"{run.label}, {run.workers} worker{'s' if run.workers != 1 else ''}: "
            f"{run.seconds:.3g} s, {run.speedup:.2f}x",
            fontsize=10,
            loc="left",
        )
        axes.grid(True, axis="x", alpha=0.3)
    figure.axes[-1].set_xlabel("seconds since the run started")
    figure.suptitle(f"Task timeline: {result.function} (one bar per task)")
    return figure


def grouped_bars_figure(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    highlight: str | None = None,
    goal: float | None = None,
    goal_label: str = "goal",
    ylabel: str = "",
    title: str = "",
    log: bool = False,
) -> Any:
    """One group of bars per entry of ``groups``, one bar per series in each (in the
    order of ``series``); ``highlight`` names the series drawn in its own colour,
    hatched and labelled with its values; ``goal`` draws a dashed horizontal line;
    ``log`` a logarithmic value axis (for ratios spanning decades). Values that are not
    finite or, with ``log``, not positive are left out."""
    names = list(series)
    if not names:
        raise ValueError("grouped_bars_figure needs at least one series to draw")
    for name, values in series.items():
        if len(values) != len(groups):
            raise ValueError(
                f"series {name!r} has {len(values)} values for {len(groups)} groups; "
                "give one value per group"
            )
    figure = _figure(max(7.0, 1.6 * len(groups) + 2), 4.8)
    axes = figure.add_subplot()
    width = 0.8 / len(names)
    palette = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:cyan"])
    for index, name in enumerate(names):
        offset = (index - (len(names) - 1) / 2) * width
        shown = [
            (g, v) for g, v in enumerate(series[name]) if math.isfinite(v) and (v > 0 or not log)
        ]
        special = name == highlight
        bars = axes.bar(
            [g + offset for g, _ in shown],
            [v for _, v in shown],
            width * 0.95,
            label=name,
            color="gold" if special else next(palette, "tab:grey"),
            edgecolor="black" if special else "white",
            linewidth=1.2 if special else 0.5,
            hatch="//" if special else None,
            zorder=3,
        )
        if special:
            axes.bar_label(bars, labels=[f"{v:.2f}" for _, v in shown], fontsize=8, padding=2)
    if log:
        axes.set_yscale("log")
        # Plain numbers at 1-2-5 steps read better than powers of ten for ratios.
        values = [v for vs in series.values() for v in vs if math.isfinite(v) and v > 0]
        if goal is not None:
            values.append(goal)
        low, high = min(values, default=1.0), max(values, default=1.0)
        ticks = [
            m * 10.0**e
            for e in range(-3, 4)
            for m in (1, 2, 5)
            if low / 2 <= m * 10.0**e <= high * 2
        ]
        axes.set_yticks(ticks, labels=[f"{t:g}" for t in ticks])
        axes.minorticks_off()
    if goal is not None:
        axes.axhline(goal, color="black", linestyle="--", linewidth=1, label=goal_label, zorder=4)
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels(groups)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, axis="y", alpha=0.3, zorder=0)
    axes.legend(fontsize=8, ncols=2)
    return figure


def write_png(figure: Any, path: str | os.PathLike[str]) -> None:
    """Write a figure as a PNG file."""
    data = png_bytes(figure)
    with open(path, "wb") as file:
        file.write(data)


def png_bytes(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_speedup(result: BenchResult, path: str | os.PathLike[str]) -> None:
    """Write the speedup-vs-workers plot as a PNG file."""
    data = png_bytes(speedup_figure(result))
    with open(path, "wb") as file:
        file.write(data)


def plot_timeline(result: BenchResult, path: str | os.PathLike[str]) -> None:
    """Write the task timeline (tasks per worker over time) as a PNG file."""
    data = png_bytes(timeline_figure(result))
    with open(path, "wb") as file:
        file.write(data)
