"""The recording runtime: memory bounds and what it ignores."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from fermion.check._races import _runtime
from fermion.check._races._rewrite import SiteInfo


@pytest.fixture
def recording() -> Iterator[None]:
    _runtime.activate()
    try:
        yield
    finally:
        _runtime.deactivate()


def site(kind: str, target: str, name: str) -> int:
    return _runtime.register_site(SiteInfo("t.py", 1, "f", "t", kind, target, name))


def test_containers_kept_alive_are_bounded(
    recording: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runtime, "_PIN_LIMIT", 20)
    write = site("write", "item", "d")
    for _ in range(100):
        _runtime._fermion_k({}, "k", write)
    assert len(_runtime._pinned) <= 20


def test_thread_local_attributes_are_never_shared(recording: None) -> None:
    local = threading.local()
    update = site("update", "attr", "count")
    start = threading.Barrier(2)

    def work() -> None:
        start.wait(timeout=10)
        local.count = 0
        for _ in range(3):
            _runtime._fermion_a(local, update).count += 1

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert _runtime._detector.races == []


def test_hooks_pass_values_through_while_inactive() -> None:
    assert not _runtime.is_active()
    read = site("read", "item", "d")
    assert _runtime._fermion_i({"a": 1}, "a", read) == 1
    assert _runtime._fermion_in("a", {"a": 1}, read) is True
    assert _runtime._fermion_get({"a": 1}, read, "b", 5) == 5
