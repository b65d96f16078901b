"""``fermion.check.races()``: race detection for the code a ``with`` block runs."""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from fermion.check._races._importer import CodeSwap
from fermion.check._races.session import RaceSession
from fermion.check._report import Report

__all__ = ["races"]


@contextmanager
def races(*, include: Sequence[str] = (), caller: bool = True) -> Iterator[Report]:
    """Detect data races in the code run inside the block; yields a report filled at exit.

    What is instrumented: the functions and methods of the calling module (their code
    is swapped for instrumented code during the block, with ``caller=True``), of every
    already-imported module whose name matches an *include* pattern (``"mypkg"``,
    ``"mypkg.*"``), and modules matching *include* that are first imported inside the
    block. The statements of the block itself are not instrumented (they are already
    running); the functions they call and the threads they start are.

    Threading primitives created inside the block are checked ones, so locks count;
    locks created before it are invisible to the lockset (create them inside, or run
    the whole program under ``fermion check --races``).

    Example::

        with fermion.check.races() as report:
            run_workers()
        assert not report.findings, report.to_text()
    """
    if isinstance(include, str):
        raise TypeError(
            f"include must be a sequence of patterns, not a str; use include=[{include!r}]"
        )
    swap = CodeSwap()
    modules = []
    if caller:
        name = sys._getframe(2).f_globals.get("__name__")
        if name in sys.modules:
            modules.append(sys.modules[name])
    for mod_name, module in list(sys.modules.items()):
        wanted = any(
            fnmatch.fnmatchcase(mod_name, p) or mod_name.startswith(p + ".") for p in include
        )
        if wanted and module is not None and module not in modules:
            modules.append(module)
    session = RaceSession((), include)
    report = Report()
    session.install()
    try:
        for module in modules:
            swap.instrument(module)
        session.begin()
        try:
            yield report
        finally:
            report.findings.extend(session.end())
    finally:
        swap.restore()
        session.uninstall()
