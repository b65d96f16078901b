"""Figures for the tour, drawn with matplotlib's object API on an Agg canvas (no
pyplot, no display, no global state). matplotlib is the ``plot`` extra."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["plotting_available", "save"]


def plotting_available() -> bool:
    """Whether matplotlib can be imported here."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


def save(draw: Callable[[Any], None], path: Path, *, width: float = 9, height: float = 4) -> None:
    """Make a figure, let ``draw`` fill it, and write it to ``path`` as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure)
    figure.savefig(path, format="png")
