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
@click.option("--quick", is_flag=True, help="Smaller workloads: about half the time.")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice([module.KEY for module in SECTIONS]),
    help="Run only this section (repeatable).",
)
@click.option(
    "--notebook",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the hands-on as a Jupyter notebook to this file instead of running the tour.",
)
def tour_command(out: str, quick: bool, only: tuple[str, ...], notebook: str | None) -> None:
    """The hands-on session, measured on this machine: the GIL, threads vs processes,
    the cost of processes, a race, atomic operations, data corruption, mutex vs
    semaphore, queues, a deadlock, starvation, killing a runaway task, shared memory
    and the backend advice.

    Prints its progress and writes an HTML report with plots to --out. Exit status 0
    when every section ran, 1 when a step failed (the report says which and why).
    With --notebook PATH, writes the same programs and exercises as a notebook instead.
    """
    if notebook is not None:
        from fermion.errors import ExtraMissingError
        from fermion.teach.tour._notebook import write_notebook

        try:
            path = write_notebook(notebook)
        except ExtraMissingError as error:
            raise click.UsageError(str(error)) from None
        click.echo(
            f"wrote {path}: open it with `jupyter lab {path}` (pip install jupyterlab) and run "
            "the cells in order"
        )
        return
    report = run_tour(out, quick=quick, only=only, echo=click.echo)
    sys.exit(0 if report.ok else 1)
