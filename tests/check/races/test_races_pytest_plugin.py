"""pytest --fermion-races fails a test whose code races, and does nothing without the flag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MYLIB = """\
import threading

hits = 0
lock = threading.Lock()


def bump():
    global hits
    hits += 1


def bump_locked():
    global hits
    with lock:
        hits += 1


def run(fn, n=3):
    threads = [threading.Thread(target=fn) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
"""

TESTS = """\
import mylib


def test_racy():
    mylib.run(mylib.bump)


def test_safe():
    mylib.run(mylib.bump_locked)
"""


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        check=False,
    )


def test_plugin_fails_the_racy_test_with_the_report(tmp_path: Path) -> None:
    (tmp_path / "mylib.py").write_text(MYLIB)
    (tmp_path / "test_lib.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = run_pytest(tmp_path, "--fermion-races")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed, 1 passed" in out
    assert "FAILED test_lib.py::test_racy" in out
    assert "data race on hits" in out and "mylib.py:9" in out


@pytest.mark.slow
def test_plugin_is_inert_without_its_flag(tmp_path: Path) -> None:
    probe = (
        "import sys, threading\n"
        "def test_probe():\n"
        "    finders = [type(f).__name__ for f in sys.meta_path]\n"
        "    assert 'InstrumentingFinder' not in finders, finders\n"
        "    assert type(threading.Lock()).__module__ == '_thread'\n"
        "    plugin = sys.modules.get('fermion.check._races._pytest')\n"
        "    assert plugin is not None  # loaded through its entry point, yet idle\n"
    )
    (tmp_path / "test_probe.py").write_text(probe)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


CHECKS = """\
import sys

import mylib


def check_value():
    assert mylib.hits == 1


def check_not_instrumented():
    finders = [f for f in sys.meta_path if type(f).__name__ == "InstrumentingFinder"]
    assert finders and "mylib" in finders[0].instrumented
    assert "check_lib" not in finders[0].instrumented, finders[0].instrumented
"""


def test_plugin_leaves_the_projects_own_test_files_to_pytest(tmp_path: Path) -> None:
    # python_files other than test_*.py: those files keep pytest's assertion rewriting
    # (the failing assert shows its values) and are never instrumented.
    (tmp_path / "mylib.py").write_text(MYLIB)
    (tmp_path / "check_lib.py").write_text(CHECKS)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\npython_files = check_*.py\npython_functions = check_*\n"
    )
    result = run_pytest(tmp_path, "--fermion-races")
    out = result.stdout + result.stderr
    assert "1 failed, 1 passed" in out, out
    assert "FAILED check_lib.py::check_value" in out
    assert "assert 0 == 1" in out, out  # pytest's rewriting of the assert
