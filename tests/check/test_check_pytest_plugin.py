"""``pytest --fermion-check``: a deadlocking test fails with the report instead of hanging."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

TESTS = """
import threading

def test_stalls():
    threading.Event().wait()

def test_inverts_lock_order():
    a, b = threading.Lock(), threading.Lock()
    with a:
        with b:
            pass
    with b:
        with a:
            pass

def test_fine():
    lock = threading.Lock()
    with lock:
        pass
"""


def run_pytest(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(TESTS)
    # Load exactly the plugins needed, whether or not the entry point is installed.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_timeout",
         "-p", "fermion._pytest_plugin", "--timeout", "60", "--rootdir", str(tmp_path), *options,
         str(tmp_path / "test_sample.py")],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path, env=env,
    )  # fmt: skip


def test_plugin_fails_stalling_and_inverting_tests_with_the_report(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, "--fermion-check")
    out = proc.stdout
    assert "2 failed, 1 passed" in out, out + proc.stderr
    assert "DeadlockError: deadlock (global stall)" in out
    assert "lock-order inversion (potential deadlock)" in out
    assert "Timeout" not in out


def test_plugin_does_nothing_without_its_option(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, "-k", "fine or inverts")
    assert "2 passed" in proc.stdout, proc.stdout + proc.stderr


def test_plugin_is_inert_without_its_option() -> None:
    # This very run loads the plugin (entry point) without --fermion-check.
    assert type(threading.Lock()) is type(threading._allocate_lock())  # type: ignore[attr-defined]
    import fermion.sync._config as config

    assert not config.checks_enabled()
