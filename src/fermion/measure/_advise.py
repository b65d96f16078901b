"""``fermion.advise``: profile a function on the first item, then recommend a backend."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from dataclasses import replace
from typing import Any

from fermion._costs._load import LoadMeter
from fermion._costs._model import BACKENDS, Advice, recommend
from fermion.measure._profile import profile

__all__ = ["advise"]


def advise(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int | None = None,
    backends: tuple[str, ...] = BACKENDS,
) -> Advice:
    """Recommend how to run ``[fn(item) for item in items]``: backend, workers, chunk size.

    ``fn`` is profiled on the first item (called repeatedly, so it should be safe to
    repeat; see ``fermion.profile``); the count of ``items`` scales the prediction (an
    iterable without ``len`` is read into a list). ``workers`` fixes the pool size;
    ``backends`` limits the choice. Print the result for the reasons and the predicted
    speedup of each option; ``advice.profile`` holds the measurements.
    """
    if not callable(fn):
        raise TypeError(f"fermion.advise needs a callable, got {type(fn).__name__}: {fn!r}")
    if isinstance(items, Sized) and hasattr(items, "__getitem__"):
        count = len(items)
        first = items[0] if count else None
    else:
        materialised = list(items)
        count = len(materialised)
        first = materialised[0] if count else None
    if count == 0:
        raise ValueError(
            f"fermion.advise needs at least one item to profile {getattr(fn, '__name__', fn)!r} on; "
            "got an empty iterable"
        )
    meter = LoadMeter()
    meter.start()
    measured = profile(fn, first)
    load = meter.stop()
    advice = recommend(measured.cost, measured.machine(), count, workers=workers, backends=backends)
    reasons = list(advice.reasons)
    if load.busy:
        reasons.insert(0, f"while profiling, {load.describe()}")
    if measured.thread_speedup is not None and measured.cost.wall >= 1e-4:
        reasons.insert(
            1,
            f"measured: two threads ran it {measured.thread_speedup:.2f}x as fast as one",
        )
    return replace(advice, reasons=tuple(reasons), profile=measured)
