"""A benchmark as one self-contained HTML page: the table and both plots inline."""

from __future__ import annotations

import base64
import html
import os
from typing import TYPE_CHECKING

from fermion.measure._plots import png_bytes, speedup_figure, timeline_figure

if TYPE_CHECKING:
    from fermion.measure._bench import BenchResult

__all__ = ["render_html", "write_html"]


def _image(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def render_html(result: BenchResult) -> str:
    """The page as a string (needs matplotlib for the images)."""
    rows = "\n".join(
        f"<tr><td>{html.escape(run.label)}</td><td>{run.workers}</td>"
        f"<td>{run.seconds:.3f}</td><td>{run.speedup:.2f}x</td></tr>"
        for run in result.runs
    )
    title = html.escape(f"fermion bench: {result.function}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 0.3em 1em; border-bottom: 1px solid #ddd; }}
td:nth-child(n+2) {{ text-align: right; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>{title}</h1>
<p>{result.items} items on {result.cpus} cores; serial run: {result.baseline:.3f} s.</p>
<table><tr><th>backend</th><th>workers</th><th>seconds</th><th>speedup</th></tr>
{rows}
</table>
<h2>Speedup</h2>
{_image(png_bytes(speedup_figure(result)), "speedup against workers")}
<h2>Task timeline</h2>
{_image(png_bytes(timeline_figure(result)), "tasks per worker over time")}
</body></html>
"""


def write_html(result: BenchResult, path: str | os.PathLike[str]) -> None:
    """Write the page to ``path``."""
    page = render_html(result)
    with open(path, "w", encoding="utf-8") as file:
        file.write(page)
