"""The shared Executor test bodies of test_executor.py, run over the dask backend.

Every ``test_*`` of test_executor.py is collected here again with the ``backend``,
``executor`` and ``make_executor`` fixtures overridden: executors connect to a local
Dask cluster shared by the module (2 workers, and 1 worker for the tests that ask for
one). Tests that build their executor from ``BACKENDS`` themselves (the context
manager, ``fermion.map``, Ctrl-C) start a local cluster of their own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle
import executor_helpers
import pytest
import test_executor as contract

from fermion import Executor

pytestmark = pytest.mark.dask

globals().update({name: test for name, test in vars(contract).items() if name.startswith("test_")})


@pytest.fixture(scope="module")
def dask_addresses() -> Iterator[dict[int, str]]:
    """Scheduler addresses of two local clusters, by their number of workers."""
    pytest.importorskip("distributed", reason="the dask extra is not installed here")
    from fermion.executors._dask import DaskBackend

    cloudpickle.register_pickle_by_value(executor_helpers)
    owners: list[DaskBackend] = []
    try:
        for workers in (2, 1):
            owners.append(DaskBackend(workers=workers))
        yield {owner.workers: owner.scheduler_address for owner in owners}
    finally:
        for owner in owners:
            owner.shutdown(wait=True)
        cloudpickle.unregister_pickle_by_value(executor_helpers)


@pytest.fixture
def backend(dask_addresses: dict[int, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(contract.BACKENDS, "dask", ("dask", {}))
    return "dask"


@pytest.fixture
def make_executor(dask_addresses: dict[int, str]) -> Iterator[Callable[..., Executor]]:
    made: list[Executor] = []

    def make(**kwargs: Any) -> Executor:
        workers = kwargs.pop("workers", 2)
        if workers not in dask_addresses:
            pytest.skip(f"no shared test cluster with {workers} workers")
        executor = Executor("dask", address=dask_addresses[workers], **kwargs)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def executor(make_executor: Callable[..., Executor]) -> Executor:
    return make_executor()


def test_the_contract_tests_were_collected() -> None:
    collected = [name for name in globals() if name.startswith("test_")]
    assert len(collected) > 20, collected
    assert sys.modules["test_executor"] is contract


@pytest.mark.slow
def test_fermion_map_is_the_one_liner(backend: str) -> None:
    """Starts three local clusters of its own (fermion.map takes no address)."""
    contract.test_fermion_map_is_the_one_liner(backend)
