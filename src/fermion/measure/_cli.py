"""``fermion advise`` and ``fermion bench``: the measuring tools on the command line."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = ["advise_command", "bench_command"]

_DEFAULT_ITEMS = "range(32)"


def _load_function(target: str) -> Callable[..., Any]:
    """``module:function`` (dotted names allowed on both sides), importable from the
    current directory as with ``python -m``."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(
            f"{target!r} is not of the form module:function (e.g. mypackage.work:crunch)",
            param_hint="FUNCTION",
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import module {module_name!r}: {exc}", param_hint="FUNCTION"
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.BadParameter(
                f"module {module_name!r} has no attribute {attr!r}", param_hint="FUNCTION"
            ) from None
    if not callable(obj):
        raise click.BadParameter(f"{target} is not callable", param_hint="FUNCTION")
    return obj


def _items(expression: str, fn: Callable[..., Any]) -> list[Any]:
    """Evaluate ``--items`` with the function's module's names in scope."""
    namespace = dict(getattr(sys.modules.get(fn.__module__), "__dict__", {}))
    try:
        return list(eval(expression, namespace))
    except Exception as exc:
        raise click.BadParameter(
            f"cannot evaluate {expression!r} to an iterable of items: {type(exc).__name__}: {exc}",
            param_hint="--items",
        ) from exc


def _int_list(value: str, option: str) -> list[int]:
    try:
        counts = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or any(count < 1 for count in counts):
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of positive integers (e.g. 1,2,4)",
            param_hint=option,
        )
    return counts


@click.command("advise")
@click.argument("function")
@click.option(
    "--items", default=_DEFAULT_ITEMS, show_default=True, help="Python expression for the items."
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Fix the pool size.")
def advise_command(function: str, items: str, workers: int | None) -> None:
    """Measure FUNCTION (module:function) on the first item and recommend a backend.

    FUNCTION is called many times on the first item, so it should be safe to repeat.
    """
    from fermion.measure._advise import advise

    fn = _load_function(function)
    data = _items(items, fn)
    if not data:
        raise click.BadParameter(f"{items!r} gave no items", param_hint="--items")
    click.echo(str(advise(fn, data, workers=workers)))


@click.command("bench")
@click.argument("function")
@click.option(
    "--items", default=_DEFAULT_ITEMS, show_default=True, help="Python expression for the items."
)
@click.option(
    "--backends",
    default="serial,threads,processes",
    show_default=True,
    help="Comma-separated backends.",
)
@click.option(
    "--workers",
    "workers_text",
    default="1,2,4",
    show_default=True,
    help="Comma-separated worker counts.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the speedup plot (PNG).",
)
@click.option(
    "--timeline",
    "timeline_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the task timeline (PNG); default next to --plot.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a page with the table and plots.",
)
def bench_command(
    function: str,
    items: str,
    backends: str,
    workers_text: str,
    plot_path: str | None,
    timeline_path: str | None,
    html_path: str | None,
) -> None:
    """Run FUNCTION (module:function) over the items on each backend and worker count."""
    from fermion.executors._registry import backend_names
    from fermion.measure._bench import bench

    names = [name.strip() for name in backends.split(",") if name.strip()]
    unknown = [name for name in names if name not in backend_names()]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown backend(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(backend_names())}",
            param_hint="--backends",
        )
    counts = _int_list(workers_text, "--workers")
    fn = _load_function(function)
    data = _items(items, fn)
    if not data:
        raise click.BadParameter(f"{items!r} gave no items", param_hint="--items")
    result = bench(fn, data, backends=names, workers=counts)
    click.echo(result.table())
    if plot_path is not None:
        result.plot(plot_path)
        click.echo(f"speedup plot: {plot_path}")
        if timeline_path is None:
            path = Path(plot_path)
            timeline_path = str(path.with_name(f"{path.stem}-timeline{path.suffix or '.png'}"))
    if timeline_path is not None:
        result.timeline(timeline_path)
        click.echo(f"task timeline: {timeline_path}")
    if html_path is not None:
        result.html(html_path)
        click.echo(f"page: {html_path}")
