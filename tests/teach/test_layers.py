"""The layers of DESIGN.md: nothing below ``teach`` imports from it."""

from __future__ import annotations

import ast
from pathlib import Path

import fermion

PACKAGE = Path(fermion.__file__).parent
#: The layers below teach: they may not import it, lazily or not.
BELOW_TEACH = ("check", "executors", "measure", "sharing", "sync", "errors.py")


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement in ``path`` (relative ones resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_no_lower_layer_imports_teach() -> None:
    offenders = []
    for top in BELOW_TEACH:
        paths = [PACKAGE / top] if top.endswith(".py") else sorted((PACKAGE / top).rglob("*.py"))
        for path in paths:
            bad = sorted(
                name
                for name in _imports(path)
                if name == "fermion.teach" or name.startswith("fermion.teach.")
            )
            if bad:
                offenders.append(f"{path.relative_to(PACKAGE)}: {', '.join(bad)}")
    assert offenders == []


def test_the_teaching_code_lives_in_teach() -> None:
    # The tour, stress, the demos and the example command moved out of the top of the
    # package and out of check/ (issue 19); nothing of them is left behind.
    left = [
        str(p.relative_to(PACKAGE))
        for p in [
            *PACKAGE.glob("_stress*.py"),
            *PACKAGE.glob("_example.py"),
            *PACKAGE.rglob("_demo.py"),
        ]
    ]
    assert left == []
    assert not (PACKAGE / "tour").exists()
