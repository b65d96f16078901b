"""Rewrite a module's AST so that shared-state accesses call cheap recording hooks.

Pure: source in, instrumented code object out, plus one :class:`SiteInfo` per access
site (handed to a ``register`` callback that returns the site's number). The number is
baked into the rewritten call as a constant, so a hook knows its file, line, function
and target without looking at a frame.

What is tracked, and how it is rewritten (``S`` is the site number):

==========================  ============================================================
``g`` (a shared global)     load: ``_fermion_g(g, S)``; store/del/``+=``: a statement
                            ``_fermion_s(S)`` before the statement that stores
cell ``v`` (nonlocal)       load: ``_fermion_cl(v, S, _fermion_cell_N)``; store: a
                            statement ``_fermion_cs(S, _fermion_cell_N)``. The owning
                            function creates ``_fermion_cell_N`` (one token per call),
                            so each closure instance is its own location
``obj.attr``                ``_fermion_a(obj, S).attr`` in any context (the hook
                            records and returns ``obj``), except the callee of a call
                            (``obj.method()`` is a method lookup, not state)
``obj.attr = v`` (in a      ``_fermion_as(obj, S, _fermion_v).attr = (_fermion_v :=
function)                   v)``: not recorded when the attribute already holds ``v``
                            (a store that changes nothing cannot race)
``c[k]`` (load)             ``_fermion_i(c, k, S)`` (records, then returns ``c[k]``)
``c[k] = v`` / del / ``+=`` ``(_fermion_t := c)[_fermion_k(_fermion_t, k, S)]``; in a
                            function ``c[k] = v`` is ``(_fermion_t := c)[_fermion_ks(
                            _fermion_t, k, S, _fermion_v)] = (_fermion_v := v)``: it
                            also publishes ``v`` (see the runtime)
``k in c``                  ``_fermion_in(k, c, S)``
``c.get(k)``                ``_fermion_get(c, S, k)``
``for x in c``, ``[.. for   ``_fermion_it(c, S)`` (also ``c.items()``/``keys()``/
x in c]``, ``list(c)`` ...  ``values()``, and the arguments of the built-ins that
                            iterate: ``list``, ``sorted``, ``sum``, ``enumerate``...)
``c.append(x)``, ``c.pop``  ``_fermion_rs(c, S).append(x)`` (the methods that may
...                         change a container's size: :data:`RESIZING_METHODS`)
==========================  ============================================================

Iterating a container and changing its size are accesses of the container's *shape*
(its key set or length; the runtime's ``SHAPE`` location): an iteration reads it, an
insertion, deletion or resizing method call writes it. Only the runtime knows that the
object is a dict, list, set or deque; the rewriter marks every candidate.

Which names count as shared: a global that some function declares ``global`` or that
module-level code binds more than once (a module constant or a ``def`` cannot race);
a closure variable that an inner function declares ``nonlocal`` or that its owner
rebinds. ``module.attr`` of an imported module is tracked only where this module also
rebinds that attribute (``settings._config = ...``): ``module.function`` is not state.
Builtins, imports, annotations, match patterns and slices are left alone.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["HOOK_NAMES", "SiteInfo", "compile_instrumented", "rewrite"]

READ, WRITE, UPDATE = "read", "write", "update"
# Shape accesses: an iteration (reads the container's size and keys), a resizing method
# call and a ``del c[k]`` (write them).
ITERATE, RESIZE, DELETE = "iterate", "resize", "delete"
GLOBAL, CELL, ATTR, ITEM = "global", "cell", "attr", "item"

HOOK_NAMES = (
    "_fermion_g",
    "_fermion_s",
    "_fermion_cl",
    "_fermion_cs",
    "_fermion_a",
    "_fermion_as",
    "_fermion_i",
    "_fermion_k",
    "_fermion_ks",
    "_fermion_in",
    "_fermion_get",
    "_fermion_newcell",
    "_fermion_it",
    "_fermion_rs",
)
# Methods of dict, list, set and deque that may change the container's size.
RESIZING_METHODS = frozenset(
    {
        "append", "appendleft", "extend", "extendleft", "insert", "remove", "pop",
        "popleft", "popitem", "clear", "update", "setdefault", "add", "discard",
        "difference_update", "intersection_update", "symmetric_difference_update",
    }
)  # fmt: skip
# Built-ins that iterate their (positional) arguments; ``enumerate``/``zip``/``map``/
# ``filter``/``reversed``/``iter`` lazily, but their result is iterated at once almost always.
_ITERATING_BUILTINS = frozenset(
    {
        "list", "tuple", "set", "frozenset", "dict", "sorted", "sum", "min", "max", "any",
        "all", "enumerate", "zip", "map", "filter", "reversed", "iter",
    }
)  # fmt: skip
_VIEW_METHODS = frozenset({"items", "keys", "values"})
_HOOK_MODULE = "fermion.check._races._runtime"
_TEMP = "_fermion_t"
_STORED = "_fermion_v"  # the value an attribute store stores (see _attribute_store)


@dataclass(frozen=True)
class SiteInfo:
    """One access site in the source: where it is and what it touches.

    ``kind`` is ``"read"``, ``"write"``, ``"update"`` (read-modify-write), ``"delete"``
    (``del c[k]``), ``"iterate"`` or ``"resize"`` (a method that may change the size); ``target``
    is ``"global"``, ``"cell"``, ``"attr"`` or ``"item"``; ``name`` is the variable or
    attribute name, or for an item the container's source text (``self.cache``).
    """

    file: str
    line: int
    function: str
    module: str
    kind: str
    target: str
    name: str


Register = Callable[[SiteInfo], int]


class _Scope:
    def __init__(self, kind: str, name: str, parent: _Scope | None) -> None:
        self.kind = kind  # module, function, lambda, class, comprehension
        self.name = name
        self.parent = parent
        self.bindings: Counter[str] = Counter()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.refs: set[str] = set()
        self.cells: set[str] = set()  # names of this scope read or written by inner scopes
        self.tracked_cells: set[str] = set()
        self.serial = 0

    @property
    def is_function_like(self) -> bool:
        return self.kind in ("function", "lambda", "comprehension")


def _target_names(target: ast.expr) -> Iterator[ast.Name]:
    if isinstance(target, ast.Name):
        yield target
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _target_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


class _ScopeBuilder(ast.NodeVisitor):
    """First pass: every scope, what it binds (and how often), declares and refers to."""

    def __init__(self) -> None:
        self.scopes: dict[ast.AST, _Scope] = {}
        self.module_imports: set[str] = set()
        # (name, attr) of every ``name.attr = ...`` / ``del name.attr`` / ``+=``: an
        # imported module's attribute that this module rebinds is shared state (a lazily
        # initialised ``settings._config``), unlike ``module.function``.
        self.attribute_stores: set[tuple[str, str]] = set()
        self.declared_global: set[str] = set()
        self._loop_depth = 0
        self._scope: _Scope = _Scope("module", "<module>", None)
        self._all: list[_Scope] = [self._scope]

    def build(self, tree: ast.Module) -> _Scope:
        self.scopes[tree] = self._scope
        for stmt in tree.body:
            self.visit(stmt)
        return self._all[0]

    def _bind(self, name: str, scope: _Scope | None = None) -> None:
        (scope or self._scope).bindings[name] += 2 if self._loop_depth else 1

    def _enter(self, node: ast.AST, kind: str, name: str) -> _Scope:
        scope = _Scope(kind, name, self._scope)
        scope.serial = len(self._all)
        self._all.append(scope)
        self.scopes[node] = scope
        return scope

    def _in_scope(self, scope: _Scope, body: list[ast.stmt] | list[ast.expr]) -> None:
        saved, saved_depth = self._scope, self._loop_depth
        self._scope, self._loop_depth = scope, 0
        try:
            for node in body:
                self.visit(node)
        finally:
            self._scope, self._loop_depth = saved, saved_depth

    def _bind_arguments(self, scope: _Scope, args: ast.arguments) -> None:
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
            scope.bindings[arg.arg] += 1
        for extra in (args.vararg, args.kwarg):
            if extra is not None:
                scope.bindings[extra.arg] += 1

    def _visit_defaults(self, args: ast.arguments) -> None:
        for default in (*args.defaults, *args.kw_defaults):
            if default is not None:
                self.visit(default)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._bind(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._visit_defaults(node.args)
        scope = self._enter(node, "function", node.name)
        self._bind_arguments(scope, node.args)
        self._in_scope(scope, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_defaults(node.args)
        scope = self._enter(node, "lambda", "<lambda>")
        self._bind_arguments(scope, node.args)
        self._in_scope(scope, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node.name)
        for expr in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
            self.visit(expr)
        scope = self._enter(node, "class", node.name)
        self._in_scope(scope, node.body)

    def _visit_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, name: str
    ) -> None:
        self.visit(node.generators[0].iter)
        scope = self._enter(node, "comprehension", name)
        saved, saved_depth = self._scope, self._loop_depth
        self._scope, self._loop_depth = scope, 1
        try:
            for i, gen in enumerate(node.generators):
                if i:
                    self.visit(gen.iter)
                self.visit(gen.target)
                for cond in gen.ifs:
                    self.visit(cond)
            if isinstance(node, ast.DictComp):
                self.visit(node.key)
                self.visit(node.value)
            else:
                self.visit(node.elt)
        finally:
            self._scope, self._loop_depth = saved, saved_depth

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._visit_comprehension(node, "<listcomp>")

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._visit_comprehension(node, "<setcomp>")

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node, "<dictcomp>")

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._visit_comprehension(node, "<genexpr>")

    def visit_Name(self, node: ast.Name) -> None:
        self._scope.refs.add(node.id)
        if not isinstance(node.ctx, ast.Load):
            self._bind(node.id)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = self._scope
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        scope.refs.add(node.target.id)
        self._bind(node.target.id, scope)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and not isinstance(node.ctx, ast.Load):
            self.attribute_stores.add((node.value.id, node.attr))
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self._scope.globals.update(node.names)
        self.declared_global.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self._scope.nonlocals.update(node.names)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                continue
            bound = alias.asname or alias.name.split(".")[0]
            self._bind(bound)
            if self._scope.kind == "module":
                self.module_imports.add(bound)

    visit_ImportFrom = visit_Import

    def _visit_loop(self, node: ast.For | ast.AsyncFor | ast.While) -> None:
        self._loop_depth += 1
        try:
            self.generic_visit(node)
        finally:
            self._loop_depth -= 1

    visit_For = visit_AsyncFor = visit_While = _visit_loop

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self._bind(node.rest)
        self.generic_visit(node)

    # Annotations are not evaluated at run time in the places that matter; skip them.
    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)

    def visit_arg(self, node: ast.arg) -> None:
        return


def _owner_of(scope: _Scope | None, name: str) -> _Scope | None:
    """The function scope that owns *name* seen as a free variable from below *scope*."""
    while scope is not None:
        if scope.kind == "module":
            return None
        if scope.kind != "class":
            if name in scope.globals:
                return None
            if name not in scope.nonlocals and name in scope.bindings:
                return scope
        scope = scope.parent
    return None


def _resolve(scope: _Scope, name: str) -> tuple[str, _Scope | None]:
    """("global", None), ("cell", owner) or ("local", None) for *name* used in *scope*."""
    if scope.kind == "module" or name in scope.globals:
        return GLOBAL, None
    if name in scope.nonlocals:
        owner = _owner_of(scope.parent, name)
        return (CELL, owner) if owner is not None else ("local", None)
    if name in scope.bindings:
        return (CELL, scope) if name in scope.cells else ("local", None)
    if scope.kind == "class":
        # Class bodies see enclosing functions' variables but not their own later bindings.
        owner = _owner_of(scope.parent, name)
        return (CELL, owner) if owner is not None else (GLOBAL, None)
    owner = _owner_of(scope.parent, name)
    return (CELL, owner) if owner is not None else (GLOBAL, None)


def _analyse(scopes: list[_Scope]) -> None:
    for scope in scopes:
        if scope.kind == "module":
            continue
        for name in scope.refs | scope.nonlocals:
            if name in scope.bindings and name not in scope.nonlocals and name not in scope.globals:
                continue
            if name in scope.globals:
                continue
            owner = _owner_of(scope.parent, name)
            if owner is None:
                continue
            owner.cells.add(name)
            if name in scope.nonlocals:
                owner.tracked_cells.add(name)
    for scope in scopes:
        if scope.kind != "function":
            scope.tracked_cells.clear()
            continue
        for name in scope.cells:
            if scope.bindings[name] >= 2:
                scope.tracked_cells.add(name)


def _call(func: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(id=func, ctx=ast.Load()), args=list(args), keywords=[])


def _const(value: int) -> ast.Constant:
    return ast.Constant(value=value)


def _has_slice(node: ast.expr) -> bool:
    if isinstance(node, ast.Slice):
        return True
    return isinstance(node, ast.Tuple) and any(isinstance(e, ast.Slice) for e in node.elts)


class _Instrumenter(ast.NodeTransformer):
    """Second pass: insert the hook calls."""

    def __init__(
        self,
        builder: _ScopeBuilder,
        module_scope: _Scope,
        filename: str,
        module: str,
        register: Register,
    ) -> None:
        self.scopes = builder.scopes
        self.module_imports = builder.module_imports
        self.attribute_stores = builder.attribute_stores
        self.filename = filename
        self.module = module
        self.register = register
        self.shared_globals = {
            name
            for name in (
                builder.declared_global | {n for n, c in module_scope.bindings.items() if c >= 2}
            )
            if not name.startswith("_fermion_")
            and not (name.startswith("__") and name.endswith("__"))
        }
        self._scope = module_scope
        self._module_scope = module_scope
        self._qualname: list[str] = []
        self._function = "<module>"

    # -- helpers ------------------------------------------------------------------------

    def _site(self, node: ast.AST, kind: str, target: str, name: str) -> ast.Constant:
        info = SiteInfo(
            self.filename,
            getattr(node, "lineno", 0),
            self._function,
            self.module,
            kind,
            target,
            name,
        )
        return _const(self.register(info))

    def _classify(self, name: str) -> tuple[str, _Scope | None]:
        if name.startswith("_fermion_"):
            return "local", None
        kind, owner = _resolve(self._scope, name)
        if kind == GLOBAL:
            return (GLOBAL, None) if name in self.shared_globals else ("local", None)
        if kind == CELL and owner is not None and name in owner.tracked_cells:
            return CELL, owner
        return "local", None

    @staticmethod
    def _token(owner: _Scope) -> str:
        return f"_fermion_cell_{owner.serial}"

    def _store_hooks(self, targets: list[ast.expr], kind: str) -> list[ast.stmt]:
        """Statements recording stores to shared names among *targets*."""
        out: list[ast.stmt] = []
        for target in targets:
            for name_node in _target_names(target):
                what, owner = self._classify(name_node.id)
                if what == GLOBAL:
                    site = self._site(name_node, kind, GLOBAL, name_node.id)
                    out.append(ast.Expr(_call("_fermion_s", site)))
                elif what == CELL and owner is not None:
                    site = self._site(name_node, kind, CELL, name_node.id)
                    out.append(
                        ast.Expr(
                            _call("_fermion_cs", site, ast.Name(self._token(owner), ast.Load()))
                        )
                    )
        for stmt in out:
            ast.copy_location(stmt, targets[0])
        return out

    def _with_scope(self, node: ast.AST, name: str, body: Callable[[], None]) -> None:
        saved_scope, saved_function = self._scope, self._function
        self._scope = self.scopes[node]
        self._qualname.append(name)
        if self._scope.kind in ("function", "lambda"):
            self._function = ".".join(self._qualname)
        try:
            body()
        finally:
            self._qualname.pop()
            self._scope, self._function = saved_scope, saved_function

    def _visit_list(self, nodes: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for node in nodes:
            result = self.visit(node)
            if result is None:
                continue
            if isinstance(result, list):
                out.extend(result)
            else:
                out.append(result)
        return out

    # -- scopes -------------------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [
            None if d is None else self.visit(d) for d in node.args.kw_defaults
        ]
        scope = self.scopes[node]

        def body() -> None:
            node.body = self._visit_list(node.body)
            if scope.tracked_cells:
                start = 1 if _has_docstring(node.body) else 0
                token = ast.Assign(
                    targets=[ast.Name(self._token(scope), ast.Store())],
                    value=_call("_fermion_newcell"),
                )
                ast.copy_location(token, node.body[0])
                node.body.insert(start, token)
            if not node.body:
                node.body = [ast.Pass()]

        self._with_scope(node, node.name, body)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [
            None if d is None else self.visit(d) for d in node.args.kw_defaults
        ]

        def body() -> None:
            node.body = self.visit(node.body)

        self._with_scope(node, "<lambda>", body)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.bases = [self.visit(b) for b in node.bases]
        for keyword in node.keywords:
            keyword.value = self.visit(keyword.value)

        def body() -> None:
            node.body = self._visit_list(node.body)

        self._with_scope(node, node.name, body)
        return node

    def _visit_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> ast.AST:
        first = node.generators[0]
        first.iter = self._visit_iterable(first.iter)

        def body() -> None:
            for i, gen in enumerate(node.generators):
                if i:
                    gen.iter = self._visit_iterable(gen.iter)
                gen.ifs = [self.visit(c) for c in gen.ifs]
            if isinstance(node, ast.DictComp):
                node.key = self.visit(node.key)
                node.value = self.visit(node.value)
            else:
                node.elt = self.visit(node.elt)

        self._with_scope(node, "<comprehension>", body)
        return node

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    # -- statements that store names ----------------------------------------------------

    def visit_Assign(self, node: ast.Assign) -> ast.AST | list[ast.stmt]:
        hooks = self._store_hooks(node.targets, WRITE)
        target = node.targets[0]
        if (
            len(node.targets) == 1
            and isinstance(target, ast.Attribute)
            and self._scope.kind == "function"
            and not _is_private(target.attr)
            and not self._is_module_function(target)
        ):
            # The value first, then the target: the order Python evaluates them in.
            value = self.visit(node.value)
            node.value = ast.copy_location(
                ast.NamedExpr(ast.Name(_STORED, ast.Store()), value), node.value
            )
            node.targets = [self._attribute_store(target)]
        elif (
            len(node.targets) == 1
            and isinstance(target, ast.Subscript)
            and self._scope.kind == "function"
            and not _has_slice(target.slice)
        ):
            value = self.visit(node.value)
            node.value = ast.copy_location(
                ast.NamedExpr(ast.Name(_STORED, ast.Store()), value), node.value
            )
            node.targets = [self._subscript_store(target, WRITE, stored=True)]
        else:
            self.generic_visit(node)
        return [*hooks, node] if hooks else node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST | list[ast.stmt]:
        hooks = self._store_hooks([node.target], UPDATE)
        node.value = self.visit(node.value)
        node.target = self._visit_target(node.target, UPDATE)  # type: ignore[assignment]
        return [*hooks, node] if hooks else node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | list[ast.stmt]:
        if node.value is None:
            return node
        hooks = self._store_hooks([node.target], WRITE)
        node.value = self.visit(node.value)
        node.target = self._visit_target(node.target, WRITE)  # type: ignore[assignment]
        return [*hooks, node] if hooks else node

    def visit_Delete(self, node: ast.Delete) -> ast.AST | list[ast.stmt]:
        hooks = self._store_hooks(node.targets, WRITE)
        self.generic_visit(node)
        return [*hooks, node] if hooks else node

    def _visit_loop(self, node: ast.For | ast.AsyncFor) -> ast.AST:
        hooks = self._store_hooks([node.target], WRITE)
        node.iter = self._visit_iterable(node.iter)
        node.target = self.visit(node.target)
        node.body = self._visit_list(node.body)
        node.orelse = self._visit_list(node.orelse)
        node.body[:0] = hooks
        return node

    visit_For = visit_AsyncFor = _visit_loop

    def _visit_with(self, node: ast.With | ast.AsyncWith) -> ast.AST:
        targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
        hooks = self._store_hooks(targets, WRITE) if targets else []
        self.generic_visit(node)
        node.body[:0] = hooks
        return node

    visit_With = visit_AsyncWith = _visit_with

    def visit_match_case(self, node: ast.match_case) -> ast.AST:
        # Patterns are not expressions: rewriting ``Color.RED`` there would not compile.
        if node.guard is not None:
            node.guard = self.visit(node.guard)
        node.body = self._visit_list(node.body)
        return node

    def _visit_target(self, target: ast.expr, kind: str) -> ast.expr:
        if isinstance(target, ast.Attribute):
            return self._attribute(target, kind)
        if isinstance(target, ast.Subscript):
            return self._subscript_store(target, kind)
        result: ast.expr = self.visit(target)
        return result

    # -- expressions --------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if not isinstance(node.ctx, ast.Load):
            return node
        what, owner = self._classify(node.id)
        if what == GLOBAL:
            return ast.copy_location(
                _call("_fermion_g", node, self._site(node, READ, GLOBAL, node.id)), node
            )
        if what == CELL and owner is not None:
            site = self._site(node, READ, CELL, node.id)
            token = ast.Name(self._token(owner), ast.Load())
            return ast.copy_location(_call("_fermion_cl", node, site, token), node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        if isinstance(func, ast.Attribute):
            # A method lookup is not shared state; instrument the object expression only.
            name = _source(func.value)
            func.value = self.visit(func.value)
            if func.attr in RESIZING_METHODS:
                site = self._site(node, RESIZE, ITEM, name)
                func.value = ast.copy_location(_call("_fermion_rs", func.value, site), func.value)
            elif (
                func.attr == "get"
                and 1 <= len(node.args) <= 2
                and not node.keywords
                and not any(isinstance(a, ast.Starred) for a in node.args)
            ):
                site = self._site(node, READ, ITEM, name)
                args = [self.visit(a) for a in node.args]
                return ast.copy_location(_call("_fermion_get", func.value, site, *args), node)
        elif isinstance(func, ast.Name) and self._is_builtin(func.id, _ITERATING_BUILTINS):
            node.args = [
                a if isinstance(a, ast.Starred) else self._visit_iterable(a) for a in node.args
            ]
            for keyword in node.keywords:
                keyword.value = self.visit(keyword.value)
            return node
        else:
            node.func = self.visit(func)
        node.args = [self.visit(a) for a in node.args]
        for keyword in node.keywords:
            keyword.value = self.visit(keyword.value)
        return node

    def _is_builtin(self, name: str, names: frozenset[str]) -> bool:
        """Whether *name* is one of the built-ins *names* here (not rebound by the module)."""
        return (
            name in names
            and _resolve(self._scope, name)[0] == GLOBAL
            and name not in self._module_scope.bindings
        )

    def _visit_iterable(self, node: ast.expr) -> ast.expr:
        """Instrument *node*, an expression that is iterated: wrap the container in
        ``_fermion_it`` (for ``c.items()`` and the other views, ``c``). Displays,
        comprehensions and other calls build a new object: nothing to wrap."""
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _VIEW_METHODS
            and not node.args
            and not node.keywords
        ):
            site = self._site(node, ITERATE, ITEM, _source(node.func.value))
            visited = self.visit(node)
            if isinstance(visited, ast.Call) and isinstance(visited.func, ast.Attribute):
                value = visited.func.value
                visited.func.value = ast.copy_location(_call("_fermion_it", value, site), value)
            return visited
        if isinstance(node, _NEW_OBJECTS):
            result: ast.expr = self.visit(node)
            return result
        site = self._site(node, ITERATE, ITEM, _source(node))
        return ast.copy_location(_call("_fermion_it", self.visit(node), site), node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        kind = READ if isinstance(node.ctx, ast.Load) else WRITE
        return self._attribute(node, kind)

    def _attribute(self, node: ast.Attribute, kind: str) -> ast.expr:
        base = node.value
        if self._is_module_function(node):
            return node  # ``module.function``: not shared state worth a hook
        node.value = self.visit(base)
        site = self._site(node, kind, ATTR, node.attr)
        node.value = ast.copy_location(_call("_fermion_a", node.value, site), base)
        return node

    def _attribute_store(self, node: ast.Attribute) -> ast.expr:
        """``obj.attr`` as the target of ``obj.attr = (_fermion_v := v)``."""
        base = node.value
        node.value = self.visit(base)
        site = self._site(node, WRITE, ATTR, node.attr)
        stored = ast.Name(_STORED, ast.Load())
        node.value = ast.copy_location(_call("_fermion_as", node.value, site, stored), base)
        return node

    def _is_module_function(self, node: ast.Attribute) -> bool:
        base = node.value
        return (
            isinstance(base, ast.Name)
            and base.id in self.module_imports
            and base.id not in self.shared_globals
            and (base.id, node.attr) not in self.attribute_stores
        )

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if isinstance(node.ctx, ast.Load):
            if _has_slice(node.slice):
                self.generic_visit(node)
                return node
            name = _source(node.value)
            container = self.visit(node.value)
            key = self.visit(node.slice)
            site = self._site(node, READ, ITEM, name)
            return ast.copy_location(_call("_fermion_i", container, key, site), node)
        return self._subscript_store(node, DELETE if isinstance(node.ctx, ast.Del) else WRITE)

    def _subscript_store(self, node: ast.Subscript, kind: str, *, stored: bool = False) -> ast.expr:
        if _has_slice(node.slice) or self._scope.kind == "comprehension":
            self.generic_visit(node)
            return node
        name = _source(node.value)
        container = self.visit(node.value)
        key = self.visit(node.slice)
        site = self._site(node, kind, ITEM, name)
        node.value = ast.copy_location(
            ast.NamedExpr(ast.Name(_TEMP, ast.Store()), container), node.value
        )
        hook = (
            _call(
                "_fermion_ks", ast.Name(_TEMP, ast.Load()), key, site, ast.Name(_STORED, ast.Load())
            )
            if stored
            else _call("_fermion_k", ast.Name(_TEMP, ast.Load()), key, site)
        )
        node.slice = ast.copy_location(hook, node)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        if len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            key = self.visit(node.left)
            container_node = node.comparators[0]
            site = self._site(node, READ, ITEM, _source(container_node))
            call = _call("_fermion_in", key, self.visit(container_node), site)
            result: ast.expr = call
            if isinstance(node.ops[0], ast.NotIn):
                result = ast.UnaryOp(op=ast.Not(), operand=call)
            return ast.copy_location(result, node)
        self.generic_visit(node)
        return node


# Iterated expressions that evaluate to a new object, which no other thread can see yet.
_NEW_OBJECTS = (
    ast.Call,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Dict,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.JoinedStr,
    ast.BinOp,
)


def _has_docstring(body: list[ast.stmt]) -> bool:
    return (
        bool(body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )


def _source(node: ast.expr) -> str:
    try:
        text = ast.unparse(node)
    except Exception:
        return "<container>"
    return text if len(text) <= 60 else text[:57] + "..."


def _import_hooks(tree: ast.Module) -> None:
    index = 1 if _has_docstring(tree.body) else 0
    while (
        index < len(tree.body)
        and isinstance(tree.body[index], ast.ImportFrom)
        and tree.body[index].module == "__future__"  # type: ignore[attr-defined]
    ):
        index += 1
    stmt = ast.ImportFrom(
        module=_HOOK_MODULE, names=[ast.alias(name=n) for n in HOOK_NAMES], level=0
    )
    stmt.lineno = stmt.end_lineno = 1
    stmt.col_offset = stmt.end_col_offset = 0
    tree.body.insert(index, stmt)


def rewrite(
    tree: ast.Module, filename: str, module: str, register: Register, *, import_hooks: bool = True
) -> ast.Module:
    """Instrument *tree* in place and return it; *register* numbers each access site.

    With *import_hooks*, a ``from fermion.check._races._runtime import ...`` line is
    inserted after the docstring and ``__future__`` imports, so the code runs wherever
    it is executed (``runpy``, ``exec``); without it, the caller must put the hook
    names (:data:`HOOK_NAMES`) in the globals the code runs with.
    """
    builder = _ScopeBuilder()
    module_scope = builder.build(tree)
    _analyse(builder._all)
    _Instrumenter(builder, module_scope, filename, module, register).visit(tree)
    if import_hooks:
        _import_hooks(tree)
    ast.fix_missing_locations(tree)
    return tree


def compile_instrumented(
    source: str | bytes,
    filename: str,
    module: str,
    register: Register,
    *,
    import_hooks: bool = True,
) -> object:
    """Parse, instrument and compile *source*; returns a code object for ``exec``."""
    tree = ast.parse(source, filename)
    rewrite(tree, filename, module, register, import_hooks=import_hooks)
    return compile(tree, filename, "exec", dont_inherit=True)


def _is_private(name: str) -> bool:
    """``__name``: Python stores it under a mangled name (``_Class__name``)."""
    return name.startswith("__") and not name.endswith("__")
