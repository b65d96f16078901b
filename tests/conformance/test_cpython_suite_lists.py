"""The conformance session's lists (run_cpython_suite.py) are documented: every test
it does not run, every known failure and every adapted test appears in
docs/executor.md with its reason. The session itself runs outside pytest (nox
``conformance-<version>``): it needs CPython's suite, obtained when it runs."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DOCS = HERE.parents[1] / "docs" / "executor.md"


def _entries() -> list[tuple[str, str]]:
    with (HERE / "cpython_suite_exclusions.toml").open("rb") as f:
        data = tomllib.load(f)
    entries = [
        (pattern, reason)
        for table in ("not_run", "known")
        for scope in data.get(table, {}).values()
        for pattern, reason in scope.items()
    ]
    sys.path.insert(0, str(HERE))
    try:
        from _adapted import ADAPTED
    finally:
        sys.path.remove(str(HERE))
    entries += [(pattern, reason) for pattern, (reason, _) in ADAPTED.items()]
    return entries


@pytest.mark.parametrize(("pattern", "reason"), _entries(), ids=lambda value: str(value)[:60])
def test_each_entry_is_documented_with_its_reason(pattern: str, reason: str) -> None:
    rows = [line for line in DOCS.read_text().splitlines() if f"`{pattern}`" in line]
    assert rows, f"{pattern} is not in {DOCS.name}'s conformance tables"
    assert any(reason in row for row in rows), (
        f"{DOCS.name} gives {pattern} another reason than {reason!r}"
    )
