"""``fermion example``: the README's first command runs and prints its table."""

from __future__ import annotations

from click.testing import CliRunner

from fermion.cli import main


def test_example_prints_a_timing_table_for_each_backend() -> None:
    result = CliRunner().invoke(
        main, ["example", "--tasks", "2", "--task-ms", "5", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    for word in ("CPU-bound", "I/O-bound", "serial", "threads", "processes", "speedup"):
        assert word in result.output


def test_example_refuses_nonsense() -> None:
    result = CliRunner().invoke(main, ["example", "--tasks", "0"])
    assert result.exit_code == 2
    assert "--tasks and --task-ms must be at least 1" in result.output
