"""CPython's own test_threading under ``pytest --fermion-check``: it must pass as it does plain.

The suite ships with the interpreter's ``test`` package (skipped where it is missing).
It introspects threading (``__all__`` by ``__module__``, ``type(threading.Lock())``
refusing instantiation, the deprecated aliases' warnings) and calls classes captured
before any patch, so it is the check that ``patch_threading()`` installs lookalikes.
Each run is a child pytest in an empty directory (no project configuration).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("test.test_threading")

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, *options: str) -> tuple[int, dict[str, int], str]:
    command = [
        sys.executable, "-m", "pytest", "--pyargs", "test.test_threading", "-q",
        "-p", "no:randomly", "-p", "no:cacheprovider", "--timeout", "120", *options,
    ]  # fmt: skip
    proc = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    counts = {
        kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error)", summary)
    }
    return proc.returncode, counts, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.timeout(1200)
def test_cpython_test_threading_passes_under_fermion_check_as_it_does_plain(
    tmp_path: Path,
) -> None:
    plain_rc, plain, plain_out = _run(tmp_path)
    checked_rc, checked, checked_out = _run(tmp_path, "--fermion-check")
    assert plain.get("passed", 0) > 100, plain_out
    assert checked == plain, checked_out
    assert checked_rc == plain_rc, checked_out
