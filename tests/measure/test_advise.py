"""fermion.advise on real functions, and the ``fermion advise`` command."""

from __future__ import annotations

import measure_helpers as h
import pytest
from click.testing import CliRunner

import fermion
from fermion._costs._load import MachineLoad
from fermion.cli import main
from fermion.measure import _advise


def test_sleeping_function_is_advised_threads() -> None:
    advice = fermion.advise(h.nap_item, range(200))
    assert advice.backend == "threads", str(advice)
    assert advice.workers > 2
    assert advice.profile is not None and advice.profile.kind == "io"
    assert "Recommended: backend='threads'" in str(advice)
    assert "Profile of" in str(advice)


def test_tiny_function_is_advised_serial() -> None:
    advice = fermion.advise(h.square, range(10_000))
    assert advice.backend == "serial", str(advice)


def test_generators_are_read_and_empty_items_refused() -> None:
    advice = fermion.advise(h.square, (i for i in range(5)))
    assert advice.items == 5
    with pytest.raises(ValueError, match=r"needs at least one item to profile 'square' on"):
        fermion.advise(h.square, [])
    with pytest.raises(TypeError, match=r"fermion.advise needs a callable, got str"):
        fermion.advise("square", [1])  # type: ignore[arg-type]


def test_advise_command_prints_the_recommendation() -> None:
    result = CliRunner().invoke(
        main, ["advise", "measure_helpers:nap_item", "--items", "range(50)"]
    )
    assert result.exit_code == 0, result.output
    assert "Recommended: backend='threads'" in result.output
    assert "waits" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["advise", "measure_helpers"], "is not of the form module:function"),
        (["advise", "no_such_module_xyz:f"], "cannot import module 'no_such_module_xyz'"),
        (
            ["advise", "measure_helpers:nothing"],
            "module 'measure_helpers' has no attribute 'nothing'",
        ),
        (["advise", "measure_helpers:square", "--items", "1/0"], "cannot evaluate '1/0'"),
        (["advise", "measure_helpers:square", "--items", "[]"], "gave no items"),
    ],
)
def test_advise_command_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output


class _BusyMeter:
    """A LoadMeter that found another program on one of two cores."""

    def start(self) -> None:
        pass

    def stop(self) -> MachineLoad:
        return MachineLoad(cores=2, wall=1.0, busy_cpu=2.0, own_cpu=1.0)


def test_advice_on_a_busy_machine_says_so_first_and_gives_one_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_advise, "LoadMeter", _BusyMeter)
    advice = fermion.advise(h.square, range(100))
    assert advice.reasons[0].startswith("while profiling, another program used 1.0 of 2 cores")
    text = str(advice)
    assert "verdict" not in text  # the reasons are the one verdict
    assert "Recommended:" in text
