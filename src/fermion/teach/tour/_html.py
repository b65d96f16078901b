"""The tour's report as one HTML page (``index.html``) beside its PNG plots."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fermion.teach.tour._runner import TourReport

__all__ = ["write_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
.machine { color: #555; }
section { border-top: 1px solid #ccc; margin-top: 2em; padding-top: 0.5em; }
pre { background: #f5f5f5; padding: 0.8em; overflow-x: auto; font-size: 13px; white-space: pre-wrap; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 14px; }
.failed { background: #fdecea; border-left: 4px solid #c62828; padding: 0.5em 1em; }
.busy { background: #ffe0b2; border-left: 4px solid #e65100; padding: 0.5em 1em; font-weight: 600; }
.note { background: #fff8e1; border-left: 4px solid #f9a825; padding: 0.5em 1em; }
.status-ok { color: #2e7d32; } .status-failed { color: #c62828; }
nav ol { columns: 2; }
"""


def _section_html(index: int, report: TourReport) -> str:
    section = report.sections[index]
    status = (
        '<span class="status-ok">ok</span>'
        if section.ok
        else f'<span class="status-failed">{len(section.failures)} step(s) failed</span>'
    )
    parts = [
        f'<section id="{html.escape(section.key)}" data-ok="{str(section.ok).lower()}">',
        f"<h2>{index + 1}. {html.escape(section.title)}</h2>",
        f"<p>{status}, {section.seconds:.1f} s</p>",
    ]
    if section.busy_notice:
        parts.append(f'<p class="busy">{html.escape(section.busy_notice)}</p>')
    for failure in section.failures:
        parts.append(f'<p class="failed">{html.escape(failure)}</p>')
    for block in section.blocks:
        if block.kind == "pre":
            parts.append(f"<pre>{html.escape(block.text)}</pre>")
        elif block.kind == "code":
            parts.append(
                f'<figure class="code"><figcaption>{html.escape(block.caption)}: the code '
                f"this section ran</figcaption><pre>{html.escape(block.text)}</pre></figure>"
            )
        else:
            parts.append(f"<p>{html.escape(block.text)}</p>")
    for image in section.images:
        parts.append(
            f'<figure><img src="{html.escape(image.file)}" alt="{html.escape(image.caption)}">'
            f"<figcaption>{html.escape(image.caption)}</figcaption></figure>"
        )
    for note in section.notes:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _load_line(report: TourReport) -> str:
    if report.load is None:
        return ""
    css = "busy" if report.load.busy else "machine"
    text = (
        f"The machine was busy: other programs used {report.load.others:.1f} of "
        f"{report.load.cores} cores on average during the tour, so its timings are slower "
        "and its speedups lower than this machine can give."
        if report.load.busy
        else f"Quiet machine: other programs used {report.load.others:.1f} of "
        f"{report.load.cores} cores on average during the tour."
    )
    return f'<p class="{css}" id="load">{html.escape(text)}</p>'


def write_html(report: TourReport, path: Path) -> None:
    """Write the report page; images are referenced by file name, next to it."""
    contents = "\n".join(
        f'<li><a href="#{html.escape(s.key)}">{html.escape(s.title)}</a></li>'
        for s in report.sections
    )
    body = "\n".join(_section_html(i, report) for i in range(len(report.sections)))
    failed = [s for s in report.sections if not s.ok]
    summary = (
        "every section ran"
        if not failed
        else f"{len(failed)} section(s) had failed steps: "
        + ", ".join(html.escape(s.title) for s in failed)
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fermion tour</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>fermion tour</h1>
<p class="machine">{html.escape(report.machine)}; {html.escape(report.started)};
{"quick run" if report.quick else "full run"}, {report.seconds:.0f} s; {summary}.</p>
{_load_line(report)}
<p>Each section ends with an exercise; to work through them cell by cell, write the
notebook with <code>fermion tour --notebook tour.ipynb</code>.</p>
<nav><ol>{contents}</ol></nav>
{body}
</body>
</html>
"""
    path.write_text(page, encoding="utf-8")
