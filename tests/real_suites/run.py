"""Real projects' test suites under fermion's checkers: plain, ``--fermion-check``,
``--fermion-races`` and ``--fermion-races --fermion-threads N``.

The suites are obtained when this runs (the projects' source distributions from PyPI,
which carry their tests), never kept in this repository. Each suite runs in a child
pytest from its own unpacked source, with the package's source directory first on the
path so that the race detector instruments it. One table row per project and mode:
tests passed/failed, races found (new to the suite, each once), hangs, wall time.

    python tests/real_suites/run.py --install            # every project, every mode
    python tests/real_suites/run.py blinker --modes plain,threads
    nox -s real-suites                                   # the same, in its own venv

``--install`` lets it pip-install what the suites need into the running environment
(the nox session passes it); without it, a missing dependency fails that project.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("FERMION_REAL_SUITES", Path(tempfile.gettempdir()) / "fermion-real"))


@dataclass(frozen=True)
class Project:
    """A pure-Python project on PyPI whose sdist ships its tests."""

    name: str
    version: str
    package: str  # the import name, instrumented
    tests: str = "tests"  # relative to the unpacked sdist
    src: str = "src"  # the directory holding the package
    deps: tuple[str, ...] = ()  # what its tests need beyond pytest
    args: tuple[str, ...] = ()  # extra pytest arguments
    why: str = ""  # why it is here: the threads or shared state it has


PROJECTS = [
    Project(
        "blinker", "1.9.0", "blinker", deps=("pytest-asyncio==0.24.0",),
        why="signals: a process-wide registry of named signals, weakref-based receivers",
    ),
    Project(
        "boltons", "26.2.0", "boltons", src=".",
        why="caches with locks (LRU, cachedmethod), `once`, queues, thread-safe utilities",
    ),
    Project(
        "cachetools", "8.0.2", "cachetools",
        why="caches and memoizing decorators meant to be used with a lock from many threads",
    ),
    Project(
        "janus", "2.0.0", "janus", src=".", deps=("pytest-asyncio==0.24.0",),
        args=("-o", "addopts=", "--ignore=tests/test_benchmarks.py"),
        why="a queue shared by threads and asyncio tasks (its benchmarks need pytest-codspeed)",
    ),
    Project(
        "tqdm", "4.70.1", "tqdm", src=".",
        why="progress bars updated from many threads (thread_map), a shared lock, monitor thread",
    ),
    Project(
        "pebble", "5.2.3", "pebble", tests="test", src=".",
        args=("--timeout-method", "thread"),
        why="thread and process pools, decorators that run calls concurrently (its tests "
        "of SIGALRM handlers need pytest-timeout off that signal)",
    ),
]  # fmt: skip

MODES = {
    "plain": [],
    "check": ["--fermion-check"],
    "races": ["--fermion-races"],
    "threads": ["--fermion-races", "--fermion-threads", "4"],
}


@dataclass
class Outcome:
    project: str
    mode: str
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    races: int = 0
    hung: bool = False
    seconds: float = 0.0
    tail: str = ""
    race_objects: list[str] = field(default_factory=list)


def obtain(project: Project) -> Path:
    """The project's unpacked sdist (downloaded once into the cache)."""
    root = CACHE / f"{project.name}-{project.version}"
    if root.is_dir():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
         ":all:", "-d", str(CACHE), f"{project.name}=={project.version}"],
        check=True,
    )  # fmt: skip
    archives = sorted(CACHE.glob(f"{project.name}-{project.version}.tar.gz")) or sorted(
        CACHE.glob(f"{project.name.replace('-', '_')}-{project.version}.tar.gz")
    )
    if not archives:
        raise RuntimeError(f"pip download left no sdist of {project.name} {project.version}")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(CACHE, filter="data")
    return root


def install(projects: list[Project]) -> None:
    deps = sorted({dep for p in projects for dep in p.deps})
    if deps:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *deps], check=True)


_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


def run(project: Project, mode: str, *, timeout: float, per_test_timeout: float) -> Outcome:
    root = obtain(project)
    outcome = Outcome(project.name, mode)
    races_json = root / f".fermion-races-{mode}.json"
    races_json.unlink(missing_ok=True)
    extra = list(MODES[mode])
    if "--fermion-races" in extra:
        extra += [
            "--fermion-races-include", project.package,
            "--fermion-races-include", f"{project.package}.*",
            "--fermion-races-json", str(races_json),
        ]  # fmt: skip
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
        "--timeout", str(per_test_timeout), *project.args, *extra, project.tests,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root / project.src), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        text = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        outcome.hung = True
        text = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
    outcome.seconds = time.perf_counter() - start
    lines = [line for line in text.strip().splitlines() if _COUNTS.search(line)]
    for n, kind in _COUNTS.findall(lines[-1] if lines else ""):
        key = "errors" if kind.startswith("error") else kind
        setattr(outcome, key, int(n))
    outcome.hung = outcome.hung or "Timeout" in text
    outcome.tail = text[-3000:]
    if races_json.exists():
        races = json.loads(races_json.read_text())["races"]
        outcome.races = len(races)
        outcome.race_objects = sorted(
            f"{race['object']} ({' / '.join(site[1] for site in race['sites'])})" for race in races
        )
    return outcome


def table(outcomes: list[Outcome]) -> str:
    plain = {o.project: o.seconds for o in outcomes if o.mode == "plain"}
    rows = [
        "| project | mode | passed | failed + errors | races | hung | seconds | vs plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        ratio = f"{o.seconds / plain[o.project]:.1f}x" if plain.get(o.project) else ""
        rows.append(
            f"| {o.project} | {o.mode} | {o.passed} | {o.failed + o.errors} | {o.races} | "
            f"{'yes' if o.hung else 'no'} | {o.seconds:.1f} | {ratio} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", nargs="*", help="names (default: all)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    parser.add_argument("--install", action="store_true", help="pip-install the suites' deps")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per suite run")
    parser.add_argument("--per-test-timeout", type=float, default=120.0)
    parser.add_argument("--json", help="write the outcomes to this file")
    args = parser.parse_args(argv)
    chosen = [p for p in PROJECTS if not args.projects or p.name in args.projects]
    unknown = set(args.projects) - {p.name for p in PROJECTS}
    if unknown:
        parser.error(f"unknown project(s) {sorted(unknown)}; known: {[p.name for p in PROJECTS]}")
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        parser.error(f"unknown mode(s) {bad}; known: {list(MODES)}")
    if args.install:
        install(chosen)
    outcomes = []
    for project in chosen:
        for mode in modes:
            outcome = run(
                project, mode, timeout=args.timeout, per_test_timeout=args.per_test_timeout
            )
            outcomes.append(outcome)
            print(
                f"{project.name:12s} {mode:8s} passed {outcome.passed:4d} failed "
                f"{outcome.failed + outcome.errors:3d} races {outcome.races:3d} "
                f"{'HUNG ' if outcome.hung else ''}{outcome.seconds:7.1f} s",
                flush=True,
            )
            for obj in outcome.race_objects:
                print(f"    race: {obj}")
    print(table(outcomes))
    if args.json:
        Path(args.json).write_text(
            json.dumps([o.__dict__ for o in outcomes], indent=2), encoding="utf-8"
        )
    return 1 if any(o.hung for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
