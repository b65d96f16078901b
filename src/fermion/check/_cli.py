"""``fermion check``: run an unmodified program under the checks and report.

The program runs in a child process (``fermion.check._runner``) so that a program
that would hang can be ended: the checks abort a stalled program within about a
second, and ``--timeout`` stops anything else. Findings come back over a file, one
JSON line each. Exit status: 0 no findings, 1 findings, 2 usage error, otherwise the
program's own status.

The program's own output stays apart from a report written to stdout as JSON or
SARIF: its stdout goes to stderr then, so that ``fermion check --format json script.py
| jq`` reads one JSON document. With the text report, or a report written to a file
(``--output``), the program keeps its stdout, as when it runs alone.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile

import click

from fermion.check._report import FORMATS, Finding, Report, dedupe

__all__ = ["check_command", "run_checked"]

RACES_MODULE = "fermion.check._races.session"
_GRACE_S = 3.0


def races_available() -> bool:
    """Whether the race detector is part of this build."""
    try:
        return importlib.util.find_spec(RACES_MODULE) is not None
    except ModuleNotFoundError:
        return False


def run_checked(
    program: list[str],
    checks: list[str],
    *,
    races: bool = False,
    include: tuple[str, ...] = (),
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    program_stdout_to_stderr: bool = False,
) -> Report:
    """Run *program* (``[SCRIPT, ARGS...]`` or ``["-m", MODULE, ARGS...]``) checked.

    Returns the report; ``exit_code`` is the program's status, or ``None`` when it was
    stopped at *timeout*. ``program_stdout_to_stderr``: the program writes its stdout
    to this process's stderr (stdout is the report's).
    """
    fd, results_path = tempfile.mkstemp(prefix="fermion-check-", suffix=".jsonl")
    os.close(fd)
    command = [sys.executable, "-m", "fermion.check._runner", "--results", results_path]
    command += ["--checks", ",".join(checks)]
    if races:
        command.append("--races")
    for pattern in include:
        command += ["--include", pattern]
    if timeout is not None:
        command += ["--timeout", str(timeout)]
    command += ["--", *program]
    exit_code: int | None
    timed_out = False
    try:
        stdout = sys.stderr if program_stdout_to_stderr else None
        child = subprocess.Popen(command, env=env, stdout=stdout)
        try:
            exit_code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            exit_code = None
        findings = _read_findings(results_path)
    finally:
        os.unlink(results_path)
    if timed_out and not any(f.kind == "deadlock" for f in findings):
        findings.append(
            Finding(
                "deadlock",
                f"the program did not finish within {timeout:g} s (--timeout) and was "
                "killed; no thread was in a checked wait it could report.",
            )
        )
    return Report(findings, list(program), exit_code)


def _read_findings(path: str) -> list[Finding]:
    out: list[Finding] = []
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(_without_kind_prefix(Finding.from_dict(json.loads(line))))
            except (ValueError, KeyError):
                continue  # a line cut short when the child was killed
    return dedupe(out)


def _without_kind_prefix(finding: Finding) -> Finding:
    """The checks' messages are those of their exceptions, which start with the kind
    ("deadlock: 2 threads wait..."); the report names the kind itself, so the message
    drops it ("[1] deadlock: 2 threads wait...", not "deadlock: deadlock: ...")."""
    prefix = f"{finding.kind}: "
    if not finding.message.startswith(prefix):
        return finding
    return dataclasses.replace(finding, message=finding.message[len(prefix) :])


def _check_module(module: str) -> None:
    """UsageError (exit 2) unless ``python -m MODULE`` would find MODULE here (the
    current directory first on the path, as ``-m`` puts it)."""
    sys.path.insert(0, os.getcwd())
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    finally:
        sys.path.pop(0)
    if not found:
        raise click.UsageError(f"no module named {module!r} to run with -m")


@click.command(
    "check",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--deadlocks", is_flag=True, help="Check for deadlocks and global stalls.")
@click.option("--lock-order", is_flag=True, help="Check for lock-order inversions.")
@click.option("--starvation", is_flag=True, help="Check for starving waiters.")
@click.option("--races", is_flag=True, help="Check for data races (lockset + happens-before).")
@click.option(
    "--include",
    multiple=True,
    metavar="PATTERN",
    help="Race checking: also instrument files matching PATTERN (repeatable).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Report format; a json or sarif report on stdout sends the program's stdout to stderr.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the report here.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop the program after S seconds and report it as hung.",
)
@click.option("-m", "module", metavar="MODULE", help="Run a module, as python -m.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def check_command(
    deadlocks: bool,
    lock_order: bool,
    starvation: bool,
    races: bool,
    include: tuple[str, ...],
    fmt: str,
    output: str | None,
    timeout: float | None,
    module: str | None,
    args: tuple[str, ...],
) -> None:
    """Run SCRIPT (or -m MODULE) with ARGS under the checks and report the findings.

    Without detector flags every detector runs. Exit status: 0 no findings, 1
    findings, 2 usage error, otherwise the program's own status.
    """
    if module is not None:
        _check_module(module)
        program = ["-m", module, *args]
    else:
        if not args:
            raise click.UsageError("give a SCRIPT to run, or -m MODULE")
        if not os.path.isfile(args[0]):
            raise click.UsageError(f"no such script: {args[0]!r}")
        program = list(args)
    chosen = [
        name
        for name, on in (
            ("deadlocks", deadlocks),
            ("lock-order", lock_order),
            ("starvation", starvation),
        )
        if on
    ]
    if not (chosen or races):
        chosen = ["deadlocks", "lock-order", "starvation"]
        races = races_available()
    elif races and not races_available():
        raise click.UsageError(
            "--races needs the race detector (fermion.check._races), which this "
            "installation lacks; run without --races to use the other checks"
        )
    report = run_checked(
        program,
        chosen,
        races=races,
        include=include,
        timeout=timeout,
        program_stdout_to_stderr=output is None and fmt != "text",
    )
    text = report.render(fmt)
    if output is not None:
        with open(output, "w", encoding="utf-8") as stream:
            stream.write(text)
    else:
        click.echo(text, nl=False)
    if report.findings:
        sys.exit(1)
    sys.exit(report.exit_code if report.exit_code is not None else 1)
