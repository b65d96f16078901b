"""Test sessions, one per interpreter, plus lint. ``bash scripts/test`` runs them all.

Interpreters are found on PATH, under pyenv, or through ``FERMION_PY<version>``
(e.g. ``FERMION_PY313T=/path/to/python3.13t``). A missing interpreter fails its
session rather than being skipped, so CI cannot pass on a partial matrix.
"""

from __future__ import annotations

import glob
import os
import shutil

import nox

nox.options.sessions = [
    "lint",
    "tests-3.11",
    "tests-3.12",
    "tests-3.13",
    "tests-3.13t",
    "conformance-3.11",
    "conformance-3.13t",
]
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = True

VERSIONS = ["3.11", "3.12", "3.13", "3.13t"]


def find_interpreter(version: str) -> str:
    env = os.environ.get("FERMION_PY" + version.replace(".", "").upper())
    if env:
        return env
    exe = f"python{version}"
    found = shutil.which(exe)
    # pyenv puts shims on PATH for versions that are installed but not selected
    if found and "/shims/" not in found:
        return found
    if version.endswith("t"):
        candidates = [os.path.expanduser("~/.cache/py313t/bin/python3.13t")]
    else:
        candidates = sorted(
            glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/{exe}"))
        )
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return exe  # nox reports it missing and fails the session


def _tests(session: nox.Session) -> None:
    # Free-threaded 3.13t: uproot/awkward (examples) ship no wheels for it, and Dask's worker
    # processes crash there (signal 11, seen in CI), so both extras are left out and their
    # tests skip with the reason; the dask backend's missing-extra error is tested there.
    extras = "test,plot" if session.name.endswith("t") else "test,plot,dask,examples"
    session.install("--prefer-binary", "-e", f".[{extras}]")
    session.run("python", "-m", "pytest", "--durations=10", *session.posargs)


for _version in VERSIONS:
    nox.session(name=f"tests-{_version}", python=find_interpreter(_version))(_tests)


def _conformance(session: nox.Session) -> None:
    """CPython 3.11's test_concurrent_futures on fermion's executors (about 4 minutes; CI
    runs it on 3.11 and 3.13t; ``nox -t conformance`` on every interpreter). The suite is
    obtained when the session runs, see tests/conformance/run_cpython_suite.py; posargs
    go to it (e.g. --backend threads, --only '*WaitTests.*')."""
    session.install("--prefer-binary", "-e", ".[test]")
    session.run("python", "tests/conformance/run_cpython_suite.py", *session.posargs)


for _version in VERSIONS:
    nox.session(
        name=f"conformance-{_version}", python=find_interpreter(_version), tags=["conformance"]
    )(_conformance)


@nox.session(python=find_interpreter("3.11"))
def lint(session: nox.Session) -> None:
    """ruff and mypy over the package, tests, benchmarks and examples."""
    session.install(
        "--prefer-binary", "-e", ".[test,plot,dask]", "ruff==0.17.6", "mypy==2.4.1", "types-psutil"
    )
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "examples", "noxfile.py")
    session.run("mypy")


for _version in VERSIONS:
    # Opt-in (not in nox.options.sessions): real projects' suites, obtained from PyPI
    # when it runs, plain and under the checkers; prints the table docs/races.md keeps.
    @nox.session(name=f"real-suites-{_version}", python=find_interpreter(_version))
    def real_suites(session: nox.Session) -> None:
        session.install("--prefer-binary", "-e", ".[test]")
        session.run("python", "tests/real_suites/run.py", "--install", *session.posargs)
