"""Progress of a ``map``/``imap`` in items: a tqdm bar on a terminal, or a callback.

``progress=True`` draws a tqdm bar (rate and ETA): in a Jupyter kernel tqdm's notebook
widget (as ``tqdm.auto`` picks it; tqdm's text bar in the cell's output when ipywidgets
is missing), on a terminal the text bar on stderr, and nothing otherwise (logs, CI,
pipes: stderr is not a terminal). ``progress=callable`` calls
``callable(done, total)`` instead, ``total`` being None when the input has no length.
The callback is called with the lock of the reporter held, so calls never overlap
and ``done`` never goes down; it runs in whichever thread completed the items (for
the processes backend, the pool's own thread), so it must be quick.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ProgressArg", "ProgressReporter", "check_progress", "make_progress"]

ProgressArg = bool | Callable[[int, int | None], object] | None


def check_progress(progress: object, what: str) -> None:
    """TypeError unless ``progress`` is a bool, None or a callable."""
    if progress is None or isinstance(progress, bool) or callable(progress):
        return
    raise TypeError(
        f"{what} must be True, False or a callable taking (done, total), "
        f"got {progress!r} ({type(progress).__name__})"
    )


class ProgressReporter:
    """Counts finished items and reports them; thread-safe."""

    def __init__(
        self, callback: Callable[[int, int | None], object] | None, bar: Any, total: int | None
    ) -> None:
        self._lock = threading.Lock()
        self._callback = callback
        self._bar = bar
        self.total = total
        self.done = 0
        self._closed = False

    def advance(self, items: int) -> None:
        with self._lock:
            if self._closed or items <= 0:
                return
            self.done += items
            if self._callback is not None:
                self._callback(self.done, self.total)
            if self._bar is not None:
                self._bar.update(items)
                if self.total is not None and self.done >= self.total:
                    self._close_locked()

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if not self._closed:
            self._closed = True
            if self._bar is not None:
                self._bar.close()


def make_progress(
    progress: ProgressArg, total: int | None, description: str
) -> ProgressReporter | None:
    """A reporter for ``progress``, or None when nothing is to be reported."""
    if progress is None or progress is False:
        return None
    if progress is True:
        bar = _bar(total, description)
        return None if bar is None else ProgressReporter(None, bar, total)
    return ProgressReporter(progress, None, total)


def _in_jupyter_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (tqdm.autonotebook's test): IPython is
    imported already and its shell was started by a kernel app."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return False
    try:
        shell = get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:
        return False


def _bar(total: int | None, description: str) -> Any:
    """The bar ``progress=True`` draws here, or None (see the module doc)."""
    options: dict[str, Any] = {"total": total, "desc": description, "unit": "item"}
    if _in_jupyter_kernel():
        try:
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(**options)
        except ImportError:  # no ipywidgets ("IProgress not found"): the text bar
            from tqdm import tqdm

            return tqdm(file=sys.stderr, **options)
    stream = sys.stderr
    isatty = getattr(stream, "isatty", None)
    if stream is None or isatty is None or not isatty():
        return None
    from tqdm import tqdm  # imported only when a bar is drawn

    return tqdm(file=stream, dynamic_ncols=True, **options)
