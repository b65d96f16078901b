"""The ``fermion tour`` command."""

from __future__ import annotations

import sys

import click

from fermion.teach.tour._runner import SECTIONS, run_tour

__all__ = ["tour_command"]


@click.command("tour")
@click.option(
    "--out",
    default="fermion-tour",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the report (index.html, plots, tour.json, programs/).",
)
@click.option("--quick", is_flag=True, help="Smaller workloads: about 20 s instead of a minute.")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice([module.KEY for module in SECTIONS]),
    help="Run only this section (repeatable).",
)
def tour_command(out: str, quick: bool, only: tuple[str, ...]) -> None:
    """The hands-on session: threads vs processes, a race, a deadlock, starvation,
    shared memory and the backend advice, measured on this machine.

    Prints its progress and writes an HTML report with plots to --out. Exit status 0
    when every section ran, 1 when a step failed (the report says which and why).
    """
    report = run_tour(out, quick=quick, only=only, echo=click.echo)
    sys.exit(0 if report.ok else 1)
