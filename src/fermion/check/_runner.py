"""The child side of ``fermion check``: run one program under the checks.

Invoked as ``python -m fermion.check._runner --results FILE [--checks LIST] [--races]
[--include PATTERN]... -- (SCRIPT | -m MODULE) [ARGS...]``. It enables the chosen
checks (lock-order findings are recorded, not warned about), applies
``patch_threading()``, starts the race detector if asked, and runs the program as
``__main__``. Each finding is appended to FILE as one JSON line the moment it is
found, so the parent has it even if this process must be killed. On SIGTERM (the
parent's timeout) it records every thread's current wait as a finding and exits 1.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import importlib.util
import json
import os
import runpy
import signal
import sys
from typing import IO, Any

from fermion.check._report import Finding

__all__ = ["main"]


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv:
        raise SystemExit("fermion.check._runner: expected -- before the program")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="fermion.check._runner")
    parser.add_argument("--results", required=True)
    parser.add_argument("--checks", default="deadlocks,lock-order,starvation")
    parser.add_argument("--races", action="store_true")
    parser.add_argument("--include", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=None)
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def _write(stream: IO[str], finding: Finding) -> None:
    stream.write(json.dumps(finding.to_dict()) + "\n")
    stream.flush()


def _on_terminate(stream: IO[str], timeout: float | None) -> Any:
    def handler(signum: int, frame: object) -> None:
        from fermion.check._checker import describe_waits
        from fermion.sync._registry import waiting

        waits = list(waiting().values())
        limit = f" within {timeout:g} s" if timeout else ""
        if waits:
            text, _, locations = describe_waits(waits, "stall")
            body = text.split("\n", 1)[1]
        else:
            body, locations = "  (no thread was in a checked wait)", ()
        message = (
            f"deadlock (timeout): the program did not finish{limit} and was stopped. "
            f"Threads in checked waits at that moment:\n{body}"
        )
        _write(stream, Finding("deadlock", message, locations))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)

    return handler


def main(argv: list[str] | None = None) -> None:
    options, program = _parse(sys.argv[1:] if argv is None else argv)
    if not program:
        raise SystemExit("fermion.check._runner: no program to run")
    checks = {c for c in options.checks.split(",") if c}
    results = open(options.results, "a", encoding="utf-8")  # noqa: SIM115 - closed at exit

    import fermion.check as check

    check.add_finding_listener(lambda finding: _write(results, finding))
    signal.signal(signal.SIGTERM, _on_terminate(results, options.timeout))
    if checks & {"deadlocks", "lock-order", "starvation"}:
        check.enable(
            deadlocks="deadlocks" in checks,
            lock_order="lock-order" in checks,
            starvation="starvation" in checks,
            on_lock_order="record",
        )
        check.patch_threading()

    if program[0] == "-m":
        module = program[1]
        spec = importlib.util.find_spec(module)
        target_path = spec.origin if spec is not None and spec.origin else module
        sys.argv = [target_path, *program[2:]]
    else:
        module = None
        target_path = os.path.abspath(program[0])
        sys.argv = [program[0], *program[1:]]
        sys.path.insert(0, os.path.dirname(target_path))

    race_handle = None
    if options.races:
        session = importlib.import_module("fermion.check._races.session")
        race_handle = session.start(target_path, list(options.include))

    def finish() -> None:
        # atexit runs after the interpreter has joined the non-daemon threads.
        if race_handle is not None:
            for finding in race_handle.stop():
                _write(results, finding)
        results.close()

    atexit.register(finish)
    if module is not None:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(target_path, run_name="__main__")


if __name__ == "__main__":
    main()
