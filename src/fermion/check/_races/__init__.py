"""The data-race detector: lockset plus happens-before over instrumented user code.

Layout: ``_detector`` (the pure analysis), ``_rewrite`` (the AST rewriter),
``_runtime`` (the recording hooks), ``_handoffs`` (synchronisation events),
``_importer`` (which modules get rewritten), ``session`` (the entry point
``fermion check --races`` calls), ``_api`` (``fermion.check.races()``),
``_pytest`` (``pytest --fermion-races``) and ``_demo`` (``fermion demo race``).
See docs/races.md.

Importing this package imports nothing else (the pytest plugin lives here and loads in
every pytest run); ``races`` is resolved on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["races"]


def __getattr__(name: str) -> Any:
    if name == "races":
        from fermion.check._races._api import races

        return races
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
