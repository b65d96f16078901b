"""The public face: every name in ``fermion.__all__`` exists and is exported once."""

from __future__ import annotations

import collections
import pickle

import pytest

import fermion
from fermion import errors


def test_every_public_name_is_exported_once() -> None:
    counts = collections.Counter(fermion.__all__)
    assert [name for name, n in counts.items() if n > 1] == []
    for name in fermion.__all__:
        assert hasattr(fermion, name), name


def test_every_error_is_reexported() -> None:
    for name in errors.__all__:
        assert getattr(fermion, name) is getattr(errors, name)


@pytest.mark.parametrize(
    "error",
    [
        errors.WorkerCrashedError(
            "worker 12 died", pid=12, exitcode=-9, signal_name="SIGKILL", task="t"
        ),
        errors.TaskTimeoutError("too slow", timeout=1.5, task="t", backend="processes"),
        errors.SerializationError("no", task="t", what="argument 1", type_name="lock", reason="r"),
        errors.ExtraMissingError.for_feature("the dask backend", "dask", "distributed"),
    ],
)
def test_errors_survive_pickling_with_their_fields(error: errors.FermionError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert again._fields == error._fields


def test_missing_extra_names_the_extra() -> None:
    err = errors.ExtraMissingError.for_feature("the dask backend", "dask", "distributed")
    assert "pip install 'fermion[dask]'" in str(err)
    assert isinstance(err, ImportError)


@pytest.mark.parametrize("error_type", [errors.WorkerCrashedError, errors.DaskWorkerLostError])
def test_a_crashed_worker_is_a_broken_process_pool(error_type: type[errors.FermionError]) -> None:
    """Code written for ProcessPoolExecutor (``except BrokenProcessPool``) catches it."""
    from concurrent.futures import BrokenExecutor
    from concurrent.futures.process import BrokenProcessPool

    error = error_type("worker 12 died", pid=12, exitcode=-9, signal_name="SIGKILL", task="t")
    with pytest.raises(BrokenProcessPool, match="worker 12 died"):
        raise error
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, BrokenProcessPool)
    assert isinstance(again, BrokenExecutor)
    assert isinstance(again, RuntimeError)
