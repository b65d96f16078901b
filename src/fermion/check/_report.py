"""The report model every checker shares, and its text, JSON and SARIF renderings.

Contract (stable; the race detector in ``fermion.check._races`` produces these too):

* :class:`Location` ``(file, line, function, thread)`` — one place a finding names.
* :class:`Finding` ``(kind, message, locations)`` — ``kind`` is one of
  :data:`KINDS` (``"deadlock"``, ``"lock-order"``, ``"race"``, ``"starvation"``,
  ``"lock-release"``);
  ``message`` is complete on its own (it may span lines, e.g. with stacks);
  ``locations`` holds every place it names, most important first.
* :class:`Report` ``(findings, argv, exit_code)`` with ``to_text()``, ``to_json()``
  (exactly DESIGN.md's schema: ``{"findings": [{"kind", "message", "locations":
  [{"file", "line", "function", "thread"}]}], "program": {"argv", "exit_code"}}``)
  and ``to_sarif()`` (SARIF 2.1.0, one rule per kind).
* ``Finding.to_dict()`` / ``Finding.from_dict()`` round-trip through JSON; the
  ``fermion check`` runner uses them to carry findings from the checked child process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["FORMATS", "KINDS", "Finding", "Location", "Report"]

Kind = Literal["deadlock", "lock-order", "race", "starvation", "lock-release"]
KINDS: tuple[str, ...] = ("deadlock", "lock-order", "race", "starvation", "lock-release")
FORMATS: tuple[str, ...] = ("text", "json", "sarif")

_RULES: dict[str, tuple[str, str, str]] = {
    # kind: (short description, help text, SARIF level)
    "deadlock": (
        "Threads wait for each other forever",
        "Threads wait in a cycle (each holds what the next one waits for), or every "
        "thread waits and none can wake. Take locks in one global order, never join a "
        "thread while holding a lock it needs, and make sure every wait has a waker.",
        "error",
    ),
    "lock-order": (
        "Locks taken in inconsistent orders",
        "Two code paths take the same locks in opposite orders; run at the wrong moment "
        "they deadlock even if this run did not. Take the locks in one global order.",
        "error",
    ),
    "race": (
        "Data race",
        "Two threads access one location without synchronisation, one of them writing. "
        "Protect the location with one lock, or hand it over through a queue or event.",
        "error",
    ),
    "starvation": (
        "A thread starves",
        "A waiter stayed blocked while other threads kept taking the same primitive. "
        "Use a fair lock (fermion.sync.FairLock) or a fair RWLock policy.",
        "warning",
    ),
    "lock-release": (
        "A lock released by a thread that does not hold it",
        "threading.Lock allows another thread to release a lock, but then the lock "
        "protects nothing for its holder. Signal between threads with a Semaphore or an "
        "Event, and release a lock in the thread that took it.",
        "warning",
    ),
}


@dataclass(frozen=True)
class Location:
    """One place a finding names: a source line, its function, and the thread there."""

    file: str
    line: int
    function: str
    thread: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "function": self.function,
            "thread": self.thread,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Location:
        return cls(str(data["file"]), int(data["line"]), str(data["function"]), str(data["thread"]))

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function} [{self.thread}]"


@dataclass(frozen=True)
class Finding:
    """One problem a checker found."""

    kind: str
    message: str
    locations: tuple[Location, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"finding kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not isinstance(self.locations, tuple):
            object.__setattr__(self, "locations", tuple(self.locations))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "locations": [loc.to_dict() for loc in self.locations],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            str(data["kind"]),
            str(data["message"]),
            tuple(Location.from_dict(loc) for loc in data.get("locations", ())),
        )


@dataclass
class Report:
    """The findings of one checked run, and the program that ran."""

    findings: list[Finding] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": [f.to_dict() for f in self.findings],
            "program": {"argv": list(self.argv), "exit_code": self.exit_code},
        }

    def to_json(self) -> str:
        """The report in DESIGN.md's JSON schema."""
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """A human-readable report, one block per finding."""
        if not self.findings:
            lines = ["fermion check: no findings."]
        else:
            counts = {k: sum(f.kind == k for f in self.findings) for k in KINDS}
            summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            lines = [f"fermion check: {len(self.findings)} finding(s) ({summary})", ""]
            for number, finding in enumerate(self.findings, 1):
                lines.append(f"[{number}] {finding.kind}: {finding.message}")
                for loc in finding.locations:
                    lines.append(f"    at {loc}")
                lines.append("")
        if self.argv:
            status = "unknown" if self.exit_code is None else str(self.exit_code)
            lines.append(f"program: {' '.join(self.argv)} (exit status {status})")
        return "\n".join(lines).rstrip("\n") + "\n"

    def to_sarif(self) -> str:
        """The report as a SARIF 2.1.0 log with one run and one rule per finding kind."""
        rules = [
            {
                "id": kind,
                "name": kind.title().replace("-", ""),
                "shortDescription": {"text": short},
                "fullDescription": {"text": help_text},
                "defaultConfiguration": {"level": level},
            }
            for kind, (short, help_text, level) in _RULES.items()
        ]
        rule_index = {kind: i for i, kind in enumerate(_RULES)}
        results = []
        for finding in self.findings:
            result: dict[str, Any] = {
                "ruleId": finding.kind,
                "ruleIndex": rule_index[finding.kind],
                "level": _RULES[finding.kind][2],
                "message": {"text": finding.message},
                "locations": [_sarif_location(loc) for loc in finding.locations[:1]],
            }
            if len(finding.locations) > 1:
                result["relatedLocations"] = [
                    {"id": i, **_sarif_location(loc)}
                    for i, loc in enumerate(finding.locations[1:], 1)
                ]
            results.append(result)
        invocation: dict[str, Any] = {
            "executionSuccessful": self.exit_code is not None,
            "arguments": list(self.argv),
        }
        if self.exit_code is not None:
            invocation["exitCode"] = self.exit_code
        log = {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "fermion",
                            "informationUri": "https://github.com/fermion/fermion",
                            "version": _version(),
                            "rules": rules,
                        }
                    },
                    "invocations": [invocation],
                    "results": results,
                }
            ],
        }
        return json.dumps(log, indent=2)

    def render(self, fmt: str) -> str:
        """The report in *fmt*, one of :data:`FORMATS`."""
        if fmt == "text":
            return self.to_text()
        if fmt == "json":
            return self.to_json() + "\n"
        if fmt == "sarif":
            return self.to_sarif() + "\n"
        raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        program = data.get("program", {})
        return cls(
            [Finding.from_dict(f) for f in data.get("findings", ())],
            list(program.get("argv", [])),
            program.get("exit_code"),
        )


def _sarif_location(loc: Location) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": _uri(loc.file)},
            "region": {"startLine": max(loc.line, 1)},
        },
        "logicalLocations": [{"name": loc.function, "kind": "function"}],
        "message": {"text": f"thread {loc.thread}"},
    }


def _uri(path: str) -> str:
    if path.startswith("<"):
        return path
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.relative_to(Path(os.getcwd())).as_posix()
    except ValueError:
        return p.as_uri()


def _version() -> str:
    from fermion import __version__

    return __version__


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """The findings without exact repeats, in first-seen order."""
    seen: set[tuple[str, str, tuple[Location, ...]]] = set()
    out: list[Finding] = []
    for f in findings:
        key = (f.kind, f.message, f.locations)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def locations_of(findings: Sequence[Finding]) -> list[Location]:
    """Every location of every finding, in order (handy in tests)."""
    return [loc for f in findings for loc in f.locations]
