"""The paths a new user takes first, run the way they take them: a real script in a
subprocess, a script piped on stdin, ``python -c``; every process test on forkserver
and spawn. (Notebooks: test_notebook.py.)"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fermion

START_METHODS = ["forkserver", "spawn"]
RUN_TIMEOUT_S = 90


def run_python(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=cwd,
    )


def write_script(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "user_script.py"
    path.write_text(textwrap.dedent(source))
    return path


# -- logging -----------------------------------------------------------------------------

LOGGING_SCRIPT = """
import logging, sys
import fermion

log = logging.getLogger("app.work")

def work(x):
    log.debug("debug record %d", x)
    log.info("item %d done", x)
    if x == 2:
        try:
            raise KeyError("boom")
        except KeyError:
            log.exception("item %d failed", x)
    return x

if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout,
        format="%(levelname)s|%(name)s|%(processName)s|%(message)s",
    )
    with fermion.Executor("processes", workers=2, start_method=sys.argv[1]) as ex:
        print("results", list(ex.map(work, range(4))))
"""


@pytest.mark.parametrize("start_method", START_METHODS)
def test_worker_log_records_reach_the_callers_handlers(tmp_path: Path, start_method: str) -> None:
    script = write_script(tmp_path, LOGGING_SCRIPT)
    done = run_python(str(script), start_method)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for x in range(4):  # level, logger name and the caller's format
        assert f"INFO|app.work|fermion-process-worker|item {x} done" in lines
    assert "ERROR|app.work|fermion-process-worker|item 2 failed" in lines
    assert "KeyError: 'boom'" in lines  # the exception's text travels with the record
    assert "debug record" not in done.stdout  # below the caller's level
    assert lines[-1] == "results [0, 1, 2, 3]"


def _debug_enabled_in_worker(_: object = None) -> bool:
    return logging.getLogger("fermion_tests.levels").isEnabledFor(logging.DEBUG)


@pytest.mark.parametrize("start_method", START_METHODS)
def test_workers_follow_the_callers_levels_as_they_change(start_method: str) -> None:
    """Records the caller would drop are not even made in a worker; a level set after
    the workers started reaches them with their next task."""
    logger = logging.getLogger("fermion_tests.levels")
    logger.setLevel(logging.INFO)
    try:
        with fermion.Executor("processes", workers=1, start_method=start_method) as ex:
            assert ex.submit(_debug_enabled_in_worker).result(timeout=60) is False
            logger.setLevel(logging.DEBUG)
            assert ex.submit(_debug_enabled_in_worker).result(timeout=60) is True
            logger.setLevel(logging.WARNING)
            assert ex.submit(_debug_enabled_in_worker).result(timeout=60) is False
    finally:
        logger.setLevel(logging.NOTSET)


DASK_LOGGING_SCRIPT = """
import logging, sys
import fermion

log = logging.getLogger("app.dask")

def work(x):
    log.debug("debug record %d", x)
    log.info("item %d done", x)
    return x

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s|%(name)s|%(message)s")
    log.setLevel(logging.INFO)
    with fermion.Executor("dask", workers=1) as ex:
        print("results", list(ex.map(work, range(3))))
"""


@pytest.mark.dask
@pytest.mark.slow
def test_dask_worker_log_records_reach_the_callers_handlers(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    script = write_script(tmp_path, DASK_LOGGING_SCRIPT)
    done = run_python(str(script))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for x in range(3):
        assert f"INFO|app.dask|item {x} done" in lines
    assert "debug record" not in done.stdout + done.stderr
    assert "results [0, 1, 2]" in lines


# -- main modules that cannot be re-imported ------------------------------------------------

NOT_REIMPORTABLE_MAIN = """
import fermion

class Point:  # defined in __main__: travels by value too
    def __init__(self, v):
        self.v = v

def square(x):
    return Point(x * x)

ex = fermion.Executor("processes", workers=2, start_method={method!r})
print("results", [p.v for p in ex.map(square, range(5))])
ex.shutdown()
"""


@pytest.mark.parametrize("start_method", START_METHODS)
def test_script_piped_on_stdin_runs_on_processes(start_method: str) -> None:
    done = run_python("-", stdin=NOT_REIMPORTABLE_MAIN.format(method=start_method))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["results [0, 1, 4, 9, 16]"]
    assert "FileNotFoundError" not in done.stderr


@pytest.mark.parametrize("start_method", START_METHODS)
def test_python_dash_c_runs_on_processes(start_method: str) -> None:
    done = run_python("-c", NOT_REIMPORTABLE_MAIN.format(method=start_method))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["results [0, 1, 4, 9, 16]"]


@pytest.mark.parametrize("start_method", START_METHODS)
def test_interactive_prompt_runs_on_processes(start_method: str) -> None:
    session = (
        "import fermion\n"
        "def square(x):\n"
        "    return x * x\n"
        "\n"
        f"ex = fermion.Executor('processes', workers=2, start_method={start_method!r})\n"
        "print('results', list(ex.map(square, range(5))))\n"
        "ex.shutdown()\n"
    )
    done = run_python("-q", "-i", stdin=session)
    assert done.returncode == 0, done.stderr
    assert "results [0, 1, 4, 9, 16]" in done.stdout
    assert "Error" not in done.stderr, done.stderr


# -- remote tracebacks -------------------------------------------------------------------

TRACEBACK_SCRIPT = """
import sys
import fermion

def inner(x):
    return 10 // (x - 3)

def work(x):
    return inner(x)

if __name__ == "__main__":
    with fermion.Executor("processes", workers=1, start_method=sys.argv[1]) as ex:
        ex.submit(work, 3).result()
"""


@pytest.mark.parametrize("start_method", START_METHODS)
def test_remote_traceback_of_a_main_function_shows_file_line_and_source(
    tmp_path: Path, start_method: str
) -> None:
    script = write_script(tmp_path, TRACEBACK_SCRIPT)
    done = run_python(str(script), start_method)
    assert done.returncode == 1
    assert "ZeroDivisionError" in done.stderr
    assert "<dynamic-code>" not in done.stderr
    assert f'File "{script}", line 9, in work\n    return inner(x)' in done.stderr
    assert f'File "{script}", line 6, in inner\n    return 10 // (x - 3)' in done.stderr


@pytest.mark.parametrize("start_method", START_METHODS)
def test_remote_traceback_of_a_stdin_function_names_stdin_and_the_line(start_method: str) -> None:
    source = TRACEBACK_SCRIPT.replace("sys.argv[1]", repr(start_method))
    done = run_python("-", stdin=source)
    assert done.returncode == 1
    assert "<dynamic-code>" not in done.stderr
    assert 'File "<stdin>", line 6, in inner' in done.stderr


# -- memory limits -----------------------------------------------------------------------

MEMORY_SCRIPT = """
import os, sys, time
import fermion

def hog(megabytes):
    hoard = b"x" * (megabytes * 1_000_000)  # written, so resident
    while True:  # holds it until stopped: only the memory limit ends this task
        time.sleep(0.01)

def small(x):
    return x + 1, os.getpid()

if __name__ == "__main__":
    with fermion.Executor("processes", workers=1, start_method=sys.argv[1],
                          max_memory_per_worker=300_000_000) as ex:
        first_pid = ex.submit(small, 0).result()[1]
        try:
            list(ex.map(hog, [1500]))
        except fermion.WorkerMemoryError as error:
            print("error", error)
            print("fields", error.pid == first_pid, error.rss > error.limit, error.limit)
        value, pid = ex.submit(small, 41).result()
        print("next", value, pid != first_pid)
"""


@pytest.mark.slow
@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_worker_growing_past_max_memory_is_stopped_and_its_item_fails(
    tmp_path: Path, start_method: str
) -> None:
    script = write_script(tmp_path, MEMORY_SCRIPT)
    done = run_python(str(script), start_method)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("error item 0 of the map (__main__.hog) used "), lines
    assert "MB of memory (RSS of worker process" in lines[0]
    assert "more than max_memory_per_worker=300000000 (300 MB)" in lines[0]
    assert lines[1:] == ["fields True True 300000000", "next 42 True"]


# -- errors name the user's items -----------------------------------------------------------

NAMING_SCRIPT = """
import os, sys, threading
import fermion

def crash_on_7(x):
    if x == 7:
        os._exit(3)
    return x

def echo(x, *, data=None):
    return x

if __name__ == "__main__":
    with fermion.Executor("processes", workers=2, start_method=sys.argv[1]) as ex:
        try:
            list(ex.map(crash_on_7, range(10)))
        except fermion.WorkerCrashedError as error:
            print("crash:", error.task)
        inputs = [1, 2, threading.Lock()]
        try:
            list(ex.map(echo, inputs, chunksize=1))
        except fermion.SerializationError as error:
            print("argument:", error.task, "|", error.what)
        try:
            ex.submit(echo, 1, data=threading.Lock()).result()
        except fermion.SerializationError as error:
            print("keyword:", error.task, "|", error.what)
"""


@pytest.mark.parametrize("start_method", START_METHODS)
def test_errors_name_the_item_of_the_input_and_the_argument(
    tmp_path: Path, start_method: str
) -> None:
    script = write_script(tmp_path, NAMING_SCRIPT)
    done = run_python(str(script), start_method)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "crash: item 7 of the map (__main__.crash_on_7)",
        "argument: item 2 of the map (__main__.echo) | positional argument 1",
        "keyword: the submitted call of __main__.echo | keyword argument 'data'",
    ]
