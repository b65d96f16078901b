"""Drawing benchmark results with matplotlib (the ``plot`` extra), without pyplot:
a Figure drawn on an Agg canvas, so no global state and no display is touched."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

from fermion.errors import ExtraMissingError

if TYPE_CHECKING:
    from fermion.measure._bench import BenchResult

__all__ = ["plot_speedup", "plot_timeline", "png_bytes"]


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
