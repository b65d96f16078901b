"""fermion in a real notebook, executed by a Jupyter kernel (nbclient + ipykernel, from
the ``test`` extra): functions of a cell run on processes, their tracebacks show the
cell's source, their log records reach the notebook, progress uses tqdm's notebook bar."""

from __future__ import annotations

import textwrap

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="nbformat is not installed (the test extra lists it)"
)
nbclient = pytest.importorskip(
    "nbclient", reason="nbclient is not installed (the test extra lists it)"
)
pytest.importorskip(
    "ipykernel", reason="ipykernel (and its pyzmq) cannot be installed on this interpreter"
)

START_METHODS = ["forkserver", "spawn"]


def run_notebook(*cells: str) -> list[dict]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(cell)) for cell in cells]
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", allow_errors=True
    )
    client.execute()
    return [cell.outputs for cell in notebook.cells]


def _text(outputs: list) -> str:
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif output.get("output_type") == "error":
            parts.append("\n".join(output["traceback"]))
        elif "data" in output:
            parts.append(str(output["data"]))
    return "".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("start_method", START_METHODS)
def test_notebook_cells_run_on_processes_with_tracebacks_and_logs(start_method: str) -> None:
    outputs = run_notebook(
        f"""
        import logging, sys
        import fermion
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                            format="%(levelname)s|%(name)s|%(message)s")
        ex = fermion.Executor("processes", workers=2, start_method={start_method!r})
        """,
        """
        log = logging.getLogger("notebook.work")
        def work(x):
            log.info("item %d", x)
            return 10 // (x - 3)
        """,
        """
        print("results", list(ex.map(work, [0, 1, 2])))
        """,
        """
        try:
            ex.submit(work, 3).result()
        except ZeroDivisionError as exc:
            print(exc.__cause__)
        """,
        """
        squares = fermion.map(abs, range(-3, 3), backend="threads", progress=True)
        print("progress", squares)
        ex.shutdown()
        """,
    )
    assert "results [-4, -5, -10]" in _text(outputs[2])
    assert "INFO|notebook.work|item 1" in _text(outputs[2])
    remote = _text(outputs[3])
    assert "<dynamic-code>" not in remote
    assert "return 10 // (x - 3)" in remote  # the cell's own source line
    assert "line 4, in work" in remote
    last = outputs[4]
    assert "progress [3, 2, 1, 0, 1, 2]" in _text(last)
    widgets = [o for o in last if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, last  # tqdm's notebook widget (ipywidgets is in the test extra)
