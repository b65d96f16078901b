"""Getting the user's code — and only the user's code — through the rewriter.

* :class:`InstrumentingFinder`, a ``sys.meta_path`` finder: modules whose source lies
  under one of the *roots* (the script's directory), or whose name matches an
  ``--include`` pattern, are compiled through :mod:`._rewrite` (never from a cached
  ``.pyc``). The standard library, site-packages and fermion itself are left alone
  unless a pattern names them.
* :func:`patch_runpy` makes ``runpy.run_path`` (what ``fermion check`` and
  ``python -m`` use for a script) compile the main script the same way.
* :class:`CodeSwap` instruments a module that is already imported by giving its
  functions and methods rewritten ``__code__`` (what ``fermion.check.races()`` does for
  the caller's module), and puts the originals back afterwards.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import site
import sys
import sysconfig
import types
from collections.abc import Iterable, Sequence
from typing import Any

from fermion.check._races import _runtime
from fermion.check._races._rewrite import HOOK_NAMES, compile_instrumented

__all__ = ["CodeSwap", "InstrumentingFinder", "compile_file", "patch_runpy"]

_FERMION_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _excluded_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    dirs = {paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    with contextlib.suppress(AttributeError):  # some virtualenvs lack it
        dirs.update(site.getsitepackages())
    user = getattr(site, "USER_SITE", None)
    if user:
        dirs.add(user)
    dirs.add(_FERMION_DIR)
    return sorted(os.path.realpath(d) + os.sep for d in dirs if d)


def _matches(fullname: str, path: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if fnmatch.fnmatchcase(fullname, pattern) or fullname.startswith(pattern + "."):
            return True
        if (os.sep in pattern or pattern.endswith(".py")) and fnmatch.fnmatchcase(path, pattern):
            return True
    return False


def compile_file(path: str, module: str) -> types.CodeType:
    """The instrumented code of the source file *path*, run as module *module*."""
    with open(path, "rb") as f:
        source = f.read()
    code = compile_instrumented(source, path, module, _runtime.register_site)
    return code  # type: ignore[return-value]


class _RewritingLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname: str) -> types.CodeType:
        return compile_file(self.get_filename(fullname), fullname)


class InstrumentingFinder(importlib.abc.MetaPathFinder):
    """Finds the user's modules and hands them to a rewriting loader."""

    def __init__(self, roots: Iterable[str], include: Sequence[str] = ()) -> None:
        self.roots = [os.path.realpath(r).rstrip(os.sep) + os.sep for r in roots]
        self.include = list(include)
        self.excluded = _excluded_dirs()
        self.instrumented: list[str] = []
        # Basename globs never instrumented (pytest's test files keep pytest's rewriting).
        self.skip_files: list[str] = []

    def wants(self, fullname: str, origin: str) -> bool:
        """Whether module *fullname* with source file *origin* is instrumented."""
        real = os.path.realpath(origin)
        if any(fnmatch.fnmatchcase(os.path.basename(real), glob) for glob in self.skip_files):
            return False
        if self.include and _matches(fullname, real, self.include):
            return True
        if any(real.startswith(d) for d in self.excluded):
            return False
        return any(real.startswith(root) for root in self.roots)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return None
        if not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        if not self.wants(fullname, spec.origin):
            return None
        spec.loader = _RewritingLoader(fullname, spec.origin)
        self.instrumented.append(fullname)
        return spec

    def install(self) -> None:
        """Put the finder first on ``sys.meta_path``."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        """Take the finder off ``sys.meta_path``."""
        while self in sys.meta_path:
            sys.meta_path.remove(self)


class _RunpyPatch:
    def __init__(self, script: str) -> None:
        self.script = os.path.realpath(script)
        self.original: Any = None

    def install(self) -> None:
        original = self.original = runpy._get_code_from_file  # type: ignore[attr-defined]
        script = self.script

        def get_code_from_file(*args: Any) -> Any:
            fname = args[-1]
            if os.path.realpath(os.fsdecode(fname)) != script:
                return original(*args)
            code = compile_file(os.fsdecode(fname), "__main__")
            return (code, fname) if len(args) == 2 else code

        runpy._get_code_from_file = get_code_from_file  # type: ignore[attr-defined]

    def uninstall(self) -> None:
        if self.original is not None:
            runpy._get_code_from_file = self.original  # type: ignore[attr-defined]
            self.original = None


def patch_runpy(script: str) -> _RunpyPatch:
    """Make ``runpy.run_path(script)`` run *script* instrumented; returns the undoable patch."""
    patch = _RunpyPatch(script)
    patch.install()
    return patch


def _code_objects(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


class CodeSwap:
    """Instrument already-imported modules in place by swapping their functions' code."""

    def __init__(self) -> None:
        self._swapped: list[tuple[types.FunctionType, types.CodeType]] = []
        self._injected: list[tuple[dict[str, Any], list[str]]] = []
        self.modules: list[str] = []

    def instrument(self, module: types.ModuleType) -> int:
        """Swap in instrumented code for the functions and methods defined in *module*.

        Returns how many functions were swapped. Closures that already exist keep their
        old code (their free variables differ); new ones come from rewritten code.
        """
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py") or not os.path.exists(path):
            return 0
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
        from fermion.check._races._rewrite import rewrite

        rewrite(tree, path, module.__name__, _runtime.register_site, import_hooks=False)
        new_code = compile(tree, path, "exec", dont_inherit=True)
        by_key = {
            (c.co_qualname if hasattr(c, "co_qualname") else c.co_name, c.co_firstlineno): c
            for c in _code_objects(new_code)
        }
        namespace = vars(module)
        added = [n for n in HOOK_NAMES if n not in namespace]
        for name in HOOK_NAMES:
            namespace.setdefault(name, getattr(_runtime, name))
        self._injected.append((namespace, added))
        count = 0
        for func in _functions_of(module):
            old = func.__code__
            key = (getattr(old, "co_qualname", old.co_name), old.co_firstlineno)
            replacement = by_key.get(key)
            if replacement is None or replacement.co_freevars != old.co_freevars:
                continue
            self._swapped.append((func, old))
            func.__code__ = replacement
            count += 1
        self.modules.append(module.__name__)
        return count

    def restore(self) -> None:
        """Put every original code object back."""
        while self._swapped:
            func, old = self._swapped.pop()
            func.__code__ = old
        while self._injected:
            namespace, added = self._injected.pop()
            for name in added:
                namespace.pop(name, None)


def _functions_of(module: types.ModuleType) -> Iterable[types.FunctionType]:
    seen: set[int] = set()
    stack: list[object] = list(vars(module).values())
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, types.FunctionType):
            if obj.__module__ == module.__name__:
                yield obj
        elif isinstance(obj, type) and obj.__module__ == module.__name__:
            stack.extend(vars(obj).values())
        elif isinstance(obj, property):
            stack.extend(f for f in (obj.fget, obj.fset, obj.fdel) if f is not None)
