"""What the race tests share: run a script under the race detector, and read the lines a
corpus program marks as racy (``# RACE-HERE``)."""

from __future__ import annotations

import runpy
from pathlib import Path

from fermion.check._races import session
from fermion.check._report import Finding


def detect(path: Path) -> list[Finding]:
    """Run ``path`` as ``__main__`` in this process under the race detector."""
    handle = session.start(str(path), [])
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        findings = handle.stop()
    return findings


def marked_lines(text: str) -> set[int]:
    """The line numbers of ``text`` that carry ``# RACE-HERE``."""
    return {n for n, line in enumerate(text.splitlines(), 1) if "# RACE-HERE" in line}
