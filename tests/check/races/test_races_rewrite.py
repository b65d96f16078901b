"""The AST rewriter: instrumented code computes what the original computes, and the
right accesses (and only those) become sites at the right lines."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Iterator
from typing import Any

import pytest

from fermion.check._races import _runtime
from fermion.check._races._rewrite import SiteInfo, compile_instrumented

SAMPLE = textwrap.dedent(
    '''
    """A module docstring stays the docstring."""
    from __future__ import annotations

    import dataclasses
    import math

    counter = 0
    counter = 1
    table = {"a": 1}
    items = [1, 2, 3, 4]


    class Box:
        """Class docstring."""

        size: int = 3
        scale = size * 2

        def __init__(self, value):
            self.value = value
            self.history = []

        @property
        def double(self):
            return self.value * 2

        @classmethod
        def make(cls, v):
            return cls(v)


    @dataclasses.dataclass
    class Point:
        x: int
        y: int = 0


    def gen(n):
        for i in range(n):
            yield i * 2


    async def coro(x):
        return x + 1


    def closures():
        """Function docstring."""
        total = 0
        seen = []

        def add(n):
            nonlocal total
            total += n
            seen.append(n)
            return total

        for i in range(4):
            add(i)
        return total, seen, (lambda: total)()


    def bump():
        global counter
        counter += 1
        counter = counter * 2
        del table["a"]
        table["a"] = 5
        table["a"] += 1
        return counter


    def everything():
        box = Box.make(2)
        box.value += 3
        box.history.append(box.double)
        (a, box.value), rest = (1, 7), [8]
        d = {}
        d["k"] = d.get("k", 0) + 1
        d["k"] += 1
        for d["loop"] in range(3):
            pass
        lst = items[:]
        lst[1:3] = [9, 9]
        del lst[0]
        sq = [x * x for x in items if x in {1, 3}]
        ds = {k: v for k, v in table.items()}
        ge = sum(x for x in gen(4))
        walrus = [y for x in items if (y := x * 2) > 4]
        found = "a" in table, 5 not in items
        text = f"{box.value!r}-{d['k']}"
        p = Point(1)
        p.y += 2
        match p:
            case Point(x=1, y=yy):
                matched = yy
            case _:
                matched = None
        try:
            raise ValueError("boom")
        except ValueError as error:
            err = str(error)
        with open(__file__) as fh:
            first = fh.readline().strip()
        obj = type("T", (), {})()
        obj.attr = [0]
        obj.attr[0] += 1
        star_a, *star_b = items
        return dict(
            box=(box.value, box.history), d=d, lst=lst, sq=sq, ds=ds, ge=ge, walrus=walrus,
            found=found, text=text, p=(p.x, p.y), matched=matched, err=err, first=first,
            attr=obj.attr, star=(star_a, star_b), scale=Box.scale, math=math.floor(2.5),
        )


    RESULT = {"closures": closures(), "bump": bump(), "everything": everything(), "gen": list(gen(3))}
    '''
)


@pytest.fixture
def recording() -> Iterator[None]:
    _runtime.activate()
    try:
        yield
    finally:
        _runtime.deactivate()


def run_as_module(code: Any, path: str) -> dict[str, Any]:
    # A real module in sys.modules: dataclasses looks its string annotations up there.
    module = types.ModuleType("fermion_race_sample")
    module.__file__ = path
    sys.modules[module.__name__] = module
    try:
        exec(code, vars(module))
    finally:
        del sys.modules[module.__name__]
    return vars(module)


def run_plain(path: str) -> dict[str, Any]:
    return run_as_module(compile(SAMPLE, path, "exec"), path)


def run_instrumented(path: str, sites: list[SiteInfo]) -> dict[str, Any]:
    def register(info: SiteInfo) -> int:
        sites.append(info)
        return _runtime.register_site(info)

    return run_as_module(compile_instrumented(SAMPLE, path, "fermion_race_sample", register), path)


@pytest.fixture
def sample_path(tmp_path: Any) -> str:
    path = tmp_path / "sample.py"
    path.write_text(SAMPLE)
    return str(path)


@pytest.mark.parametrize("active", [False, True])
def test_instrumented_code_computes_the_same(sample_path: str, active: bool) -> None:
    plain = run_plain(sample_path)
    if active:
        _runtime.activate()
    try:
        sites: list[SiteInfo] = []
        instrumented = run_instrumented(sample_path, sites)
    finally:
        if active:
            _runtime.deactivate()
    assert instrumented["RESULT"] == plain["RESULT"]
    assert instrumented["__doc__"] == plain["__doc__"]
    assert instrumented["closures"].__doc__ == "Function docstring."
    assert instrumented["Box"].__doc__ == "Class docstring."
    assert sites, "nothing was instrumented"


def test_sites_name_the_shared_targets_at_their_lines(sample_path: str) -> None:
    sites: list[SiteInfo] = []
    run_instrumented(sample_path, sites)
    lines = SAMPLE.splitlines()

    def line_of(text: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if line.strip() == text)

    found = {(s.target, s.name, s.kind, s.line) for s in sites}
    assert ("global", "counter", "update", line_of("counter += 1")) in found
    assert ("cell", "total", "update", line_of("total += n")) in found
    assert ("attr", "value", "update", line_of("box.value += 3")) in found
    assert ("item", "table", "write", line_of('table["a"] = 5')) in found
    assert ("item", "d", "read", line_of('d["k"] = d.get("k", 0) + 1')) in found
    functions = {s.function for s in sites if s.name == "total"}
    assert functions == {"closures", "closures.add", "closures.<lambda>"}
    names = {s.name for s in sites if s.target == "global"}
    # Builtins, imports, functions, classes and single-assignment constants are not shared state.
    assert names == {"counter"}
    assert not any(s.name == "append" for s in sites)  # method lookups are not state


def test_hooks_record_nothing_while_inactive(sample_path: str) -> None:
    sites: list[SiteInfo] = []
    run_instrumented(sample_path, sites)
    assert not _runtime.is_active()


def test_a_syntax_error_in_user_code_is_the_usual_syntax_error() -> None:
    with pytest.raises(SyntaxError):
        compile_instrumented("def broken(:\n", "broken.py", "broken", _runtime.register_site)


SHAPES = textwrap.dedent(
    """
    import collections

    d = {"a": 1, "b": 2}
    items = [3, 1, 2]
    seen = set()
    queue = collections.deque()


    def shapes():
        out = []
        for k in d:
            out.append(k)
        for k, v in d.items():
            out.append(v)
        out.append(sum(items))
        out.append(sorted(d.keys()))
        out.append([x * 2 for x in items])
        out.append(list(enumerate(items)))
        for i in range(2):
            out.append(i)
        d["c"] = 3
        del d["a"]
        items.remove(1)
        seen.add(4)
        queue.append(5)
        out.append(d.pop("b"))
        return out, dict(d), list(items), set(seen), list(queue)


    def shadowed(sum=len):
        return sum(items)


    RESULT = shapes(), shadowed()
    """
)


def test_iterations_and_size_changes_are_sites_and_compute_the_same(tmp_path: Any) -> None:
    path = str(tmp_path / "shapes.py")
    plain = run_as_module(compile(SHAPES, path, "exec"), path)
    sites: list[SiteInfo] = []

    def register(info: SiteInfo) -> int:
        sites.append(info)
        return _runtime.register_site(info)

    _runtime.activate()
    try:
        code = compile_instrumented(SHAPES, path, "fermion_race_shapes", register)
        instrumented = run_as_module(code, path)
    finally:
        _runtime.deactivate()
    assert instrumented["RESULT"] == plain["RESULT"]
    lines = SHAPES.splitlines()

    def kinds_at(text: str) -> set[tuple[str, str]]:
        line = next(i for i, src in enumerate(lines, 1) if src.strip() == text)
        return {(s.kind, s.name) for s in sites if s.line == line}

    assert ("iterate", "d") in kinds_at("for k in d:")
    assert ("iterate", "d") in kinds_at("for k, v in d.items():")
    assert ("iterate", "items") in kinds_at("out.append(sum(items))")
    assert ("resize", "out") in kinds_at("out.append(sum(items))")
    assert ("iterate", "d") in kinds_at("out.append(sorted(d.keys()))")
    assert ("iterate", "items") in kinds_at("out.append([x * 2 for x in items])")
    assert ("iterate", "items") in kinds_at("out.append(list(enumerate(items)))")
    assert not any(k == "iterate" for k, _ in kinds_at("for i in range(2):"))
    assert ("write", "d") in kinds_at('d["c"] = 3')
    assert ("delete", "d") in kinds_at('del d["a"]')
    assert ("resize", "items") in kinds_at("items.remove(1)")
    assert ("resize", "seen") in kinds_at("seen.add(4)")
    assert ("resize", "queue") in kinds_at("queue.append(5)")
    assert ("resize", "d") in kinds_at('out.append(d.pop("b"))')
    # A parameter named like a built-in is not the built-in: no iteration site.
    assert kinds_at("return sum(items)") == set()
