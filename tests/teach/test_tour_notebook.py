"""``fermion tour --notebook PATH``: the hands-on as a notebook that runs cell by cell."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fermion.cli import main
from fermion.teach.tour import SECTIONS
from fermion.teach.tour._notebook import notebook_cells


def test_the_notebook_has_every_section_its_exercise_and_its_code() -> None:
    cells = notebook_cells()
    markdown = "\n".join(source for kind, source in cells if kind == "markdown")
    code = "\n".join(source for kind, source in cells if kind == "code")
    for number, module in enumerate(SECTIONS, 1):
        assert f"## {number}. {module.TITLE}" in markdown
        assert f"**Exercise.** {module.EXERCISE}" in markdown
        program = getattr(module, "PROGRAM", None)
        if program is not None and module.KEY != "atomic":
            assert program in code, module.KEY  # the very program the tour runs and shows
    assert "%%writefile philosophers.py" in code


def test_without_nbformat_the_command_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "nbformat", None)
    result = CliRunner().invoke(main, ["tour", "--notebook", str(tmp_path / "tour.ipynb")])
    assert result.exit_code == 2
    assert (
        "fermion tour --notebook needs the optional package 'nbformat', which is not "
        "installed; install it with: pip install 'fermion[notebook]'"
    ) in result.output
    assert not (tmp_path / "tour.ipynb").exists()


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jupyter_client/zmq's, not ours
def test_the_notebook_runs_from_the_first_cell_to_the_last(tmp_path: Path) -> None:
    missing = _missing("nbformat", "nbclient", "ipykernel")
    if missing:
        pytest.skip(
            f"executing the notebook needs {', '.join(missing)} (the 'test' extra: pip "
            "install -e '.[test]'); on builds where they do not install (free-threaded "
            "3.13t, when pyzmq has no wheel) this test cannot run"
        )
    import nbformat
    from nbclient import NotebookClient

    path = tmp_path / "tour.ipynb"
    result = CliRunner().invoke(main, ["tour", "--notebook", str(path)])
    assert result.exit_code == 0, result.output
    assert f"wrote {path}" in result.output
    book = nbformat.read(str(path), as_version=4)
    nbformat.validate(book)
    client = NotebookClient(
        book,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on error
    printed = "\n".join(
        str(output.get("text", ""))
        for cell in book.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "fermion check: 1 finding(s) (1 deadlock)" in printed
    assert "RuntimeError: cannot release un-acquired lock" in printed
    assert "transfer_locked: total 10000 of 10000; 0 of" in printed
    assert "append_to_list: 40000 of 40000" in printed
    assert "writer got in after" in printed
    assert (tmp_path / "philosophers.py").is_file()  # %%writefile wrote it beside the notebook
