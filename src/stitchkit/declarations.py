"""Everything a user can name, declared once, where it is defined.

A similarity measure, an OOD detector, a stitching-layer type, a dataset, a model family and a study
unit kind each carry their name, options and metadata in one decorator at their definition::

    @declare("measure", "cka", help="linear CKA (Kornblith et al. 2019)", requires_models=False)
    class LinearCKA(Measure):
        ...

Two readers derive everything else from these declarations:

* :func:`catalogue` (and :func:`names`, :func:`declaration`) reads them **without importing the defining
  modules**: it parses the source files of the kind's home package (:data:`KINDS`) and evaluates the
  decorator's arguments, which must therefore be literals (or module-level constants bound to
  literals); it reads a module's top level (the decorators of its classes and functions). This is
  what the command line's choices, ``--help``, the study schema and the report's order come from, so
  the command line answers ``--help`` without importing torch. Declarations made at
  run time in this process (a notebook's or a test's own measure) are added after the scanned ones.
* :func:`implementation` imports the defining module (which runs the decorator) and returns the
  declared object: the registries use it.

Adding a measure, a detector, … is therefore one new file in the kind's home package, with no list
to keep in step elsewhere (``CONTRIBUTING.md`` has the steps). This module imports nothing heavy.
"""

from __future__ import annotations

import ast
import importlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from .errors import StitchkitError, unknown_name

T = TypeVar("T")

PACKAGE = __name__.rpartition(".")[0]
PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ThingKind:
    """A kind of named thing: how messages call it, and the packages (relative to ``stitchkit``, with
    ``/``) whose modules declare the built-in ones."""

    words: str
    homes: tuple[str, ...]


#: every kind of declared thing → its words and home packages
KINDS: dict[str, ThingKind] = {
    "measure": ThingKind("similarity measure", ("similarity",)),
    "detector": ThingKind("OOD detector", ("ood/detectors",)),
    "stitching_layer": ThingKind("stitching-layer type", ("stitching/layer_types",)),
    "dataset": ThingKind("dataset", ("data/sets",)),
    "model_family": ThingKind("model family", ("models/families",)),
    "unit_kind": ThingKind("study unit kind", ("study/unit_kinds",)),
}


class DeclarationError(StitchkitError):
    """A declaration that cannot be read: a kind that does not exist, an argument that is not a
    literal, or a name declared twice."""


@dataclass(frozen=True)
class Declaration:
    """One declared thing: its kind and name, the module that defines it, where (``file:line``), and
    its metadata (the decorator's keyword arguments, read-only)."""

    kind: str
    name: str
    module: str
    source: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.meta.get(key, default)

    @property
    def order(self) -> float:
        """Where the thing is listed among its kind (``order=`` in the declaration; undeclared orders
        come after, by module and line)."""
        return self.meta.get("order", math.inf)


# kind -> name -> (declaration, the declared object): what decorators ran in this process
_DECLARED: dict[str, dict[str, tuple[Declaration, Any]]] = {kind: {} for kind in KINDS}


def _check_kind(kind: str) -> ThingKind:
    if kind not in KINDS:
        raise unknown_name("kind of declaration", str(kind), list(KINDS))
    return KINDS[kind]


def declare(kind: str, name: str, /, **meta: Any) -> Callable[[T], T]:
    """Declare the decorated object (a class or a function) as the ``kind`` named ``name``, with
    ``meta`` as its metadata. In a home package, every argument must be a literal (see the module
    docstring); declared elsewhere (a notebook, a test), the thing is known from the moment the
    decorator runs."""
    _check_kind(kind)
    if not isinstance(name, str) or not name:
        raise DeclarationError(f"a {KINDS[kind].words} needs a non-empty name, got {name!r}")

    def decorate(obj: T) -> T:
        module = getattr(obj, "__module__", None) or "__main__"
        code = getattr(obj, "__code__", None)
        source = f"{module}:{code.co_firstlineno}" if code is not None else module
        known = _DECLARED[kind].get(name)
        if known is not None and known[0].module != module:
            raise DeclarationError(
                f"{KINDS[kind].words} {name!r} is declared twice: in {known[0].module} and in {module}"
            )
        _DECLARED[kind][name] = (Declaration(kind, name, module, source, MappingProxyType(dict(meta))), obj)
        return obj

    return decorate


def forget(kind: str, name: str) -> None:
    """Undo a declaration made at run time (a test's toy measure); scanned declarations stay known."""
    _check_kind(kind)
    _DECLARED[kind].pop(name, None)


def catalogue(kind: str) -> dict[str, Declaration]:
    """Every declared ``kind``, in order (``order=``, then module and line), without importing the
    modules that define them; those declared at run time elsewhere come last."""
    _check_kind(kind)
    found = dict(_scanned(kind))
    for name, (decl, _) in _DECLARED[kind].items():
        if name in found and found[name].module != decl.module:
            raise DeclarationError(
                f"{KINDS[kind].words} {name!r} is declared twice: in {found[name].module} and in {decl.module}"
            )
        found.setdefault(name, decl)
    return found


def names(kind: str, **where: Any) -> tuple[str, ...]:
    """The names of every declared ``kind`` whose metadata has the given values
    (``names("measure", requires_models=False)``)."""
    return tuple(name for name, decl in catalogue(kind).items() if all(decl.meta.get(k) == v for k, v in where.items()))


class LiveNames(Sequence[str]):
    """The names of every declared ``kind`` (as :func:`names` with ``where``), read anew whenever they are
    used: choices that are fixed when a module is imported (a schema's) and must still see what is
    declared later (a notebook's or a test's own). ``first`` names are put first, in that order."""

    def __init__(self, kind: str, *, first: tuple[str, ...] = (), **where: Any):
        _check_kind(kind)
        self.kind, self.first, self.where = kind, tuple(first), where

    def _now(self) -> tuple[str, ...]:
        found = names(self.kind, **self.where)
        return (*(n for n in self.first if n in found), *(n for n in found if n not in self.first))

    def __getitem__(self, index):  # type: ignore[override]
        return self._now()[index]

    def __len__(self) -> int:
        return len(self._now())

    def __iter__(self) -> Iterator[str]:
        return iter(self._now())

    def __contains__(self, value: object) -> bool:
        return value in self._now()

    def __repr__(self) -> str:
        return repr(self._now())


def declaration(kind: str, name: str) -> Declaration:
    """The declaration of the ``kind`` named ``name``; an unknown name is refused with the choices."""
    known = catalogue(kind)
    if name not in known:
        raise unknown_name(KINDS[kind].words, str(name), list(known))
    return known[name]


def implementation(kind: str, name: str) -> Any:
    """The object declared as the ``kind`` named ``name``, importing its module on first use."""
    decl = declaration(kind, name)
    if name not in _DECLARED[kind]:
        importlib.import_module(decl.module)
    if name not in _DECLARED[kind]:
        raise DeclarationError(f"{decl.module} was imported but did not declare {KINDS[kind].words} {name!r}")
    return _DECLARED[kind][name][1]


def declaration_of(kind: str, obj: Any) -> Declaration:
    """The declaration whose declared object is ``obj`` (a class reads its own name and metadata so);
    an undeclared object is refused."""
    for decl in catalogue(kind).values():
        if decl.module == getattr(obj, "__module__", None) and implementation(kind, decl.name) is obj:
            return decl
    raise DeclarationError(
        f"{getattr(obj, '__qualname__', obj)!r} is not declared as a {KINDS[kind].words}: "
        f"decorate it with @declare({kind!r}, name, ...) (see CONTRIBUTING.md)"
    )


def implementations(kind: str) -> dict[str, Any]:
    """Every declared ``kind``'s object by name, in catalogue order (imports every defining module)."""
    return {name: implementation(kind, name) for name in catalogue(kind)}


# --------------------------------------------------------------------------------------------------
# reading declarations from source, without importing


@cache
def _scanned(kind: str) -> dict[str, Declaration]:
    found: list[Declaration] = []
    for home in KINDS[kind].homes:
        folder = PACKAGE_DIR / home
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.py")):
            found.extend(d for d in _declarations_in(path, _module_name(path)) if d.kind == kind)
    found.sort(key=lambda d: (d.order, d.module, int(d.source.rpartition(":")[2])))  # lines as numbers: 9 before 10
    by_name: dict[str, Declaration] = {}
    for decl in found:
        if decl.name in by_name:
            raise DeclarationError(
                f"{KINDS[kind].words} {decl.name!r} is declared twice: at {by_name[decl.name].source} and at "
                f"{decl.source}"
            )
        by_name[decl.name] = decl
    return by_name


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join((PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)))


def _declarations_in(path: Path, module: str) -> list[Declaration]:
    text = path.read_text(encoding="utf-8")
    if "declare(" not in text:
        return []
    tree = ast.parse(text, filename=str(path))
    constants = _module_constants(tree, path)
    out = []
    for node in _declare_calls(tree):
        where = f"{path}:{node.lineno}"
        if len(node.args) != 2:
            raise DeclarationError(f"{where}: declare() takes the kind and the name, then keyword arguments")
        kind, name = (_literal(arg, constants, where) for arg in node.args)
        meta = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise DeclarationError(
                    f"{where}: declare() cannot read **{ast.unparse(keyword.value)}; name each argument"
                )
            meta[keyword.arg] = _literal(keyword.value, constants, where)
        _check_kind(kind)
        out.append(Declaration(kind, name, module, where, MappingProxyType(meta)))
    return out


def _declare_calls(tree: ast.Module) -> Iterator[ast.Call]:
    """The ``declare(...)`` calls of a module's top level: in the decorators of its classes and functions
    (not in their bodies, which the reader need not walk: the slow part of reading) and in its other
    statements."""
    for statement in tree.body:
        defines = isinstance(statement, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        for root in statement.decorator_list if defines else [statement]:
            for node in ast.walk(root):
                if isinstance(node, ast.Call) and _is_declare(node.func):
                    yield node


def _is_declare(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "declare") or (
        isinstance(func, ast.Attribute) and func.attr == "declare"
    )


@dataclass(frozen=True)
class _Imported:
    """``from .module import NAME`` at a module's top level: the constant is read from that file."""

    path: Path
    name: str


def _module_constants(tree: ast.Module, path: Path | None = None) -> dict[str, ast.expr | _Imported]:
    """The module's top-level ``NAME = value`` bindings (evaluated only when a declaration uses them),
    and the names it imports from sibling modules by a relative ``from . import`` (read from their files)."""
    out: dict[str, ast.expr | _Imported] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = node.value
        elif isinstance(node, ast.ImportFrom) and node.level > 0 and node.module and path is not None:
            source = path.parents[node.level - 1].joinpath(*node.module.split(".")).with_suffix(".py")
            out.update({alias.asname or alias.name: _Imported(source, alias.name) for alias in node.names})
    return out


@cache
def _constants_of(path: Path) -> dict[str, ast.expr | _Imported]:
    if not path.is_file():
        return {}
    return _module_constants(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), path)


def _literal(node: ast.expr, constants: Mapping[str, ast.expr | _Imported], where: str, depth: int = 0) -> Any:
    """The value of a literal expression: constants, tuples, lists, sets, dicts, a negative number,
    ``+`` of strings or tuples, and names of module-level constants bound to such literals (in the
    module, or imported from a sibling module with a relative ``from .module import NAME``)."""
    if depth > 20:
        raise DeclarationError(f"{where}: a declaration's constants refer to each other in a loop")

    def value(child: ast.expr) -> Any:
        return _literal(child, constants, where, depth + 1)

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(value(e) for e in node.elts)
    if isinstance(node, ast.List):
        return [value(e) for e in node.elts]
    if isinstance(node, ast.Set):
        return frozenset(value(e) for e in node.elts)
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {value(k): value(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -value(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return value(node.left) + value(node.right)
    if isinstance(node, ast.Name) and node.id in constants:
        bound = constants[node.id]
        if not isinstance(bound, _Imported):
            return value(bound)
        others = _constants_of(bound.path)
        if bound.name in others:
            return _literal(ast.Name(bound.name), others, where, depth + 1)
    raise DeclarationError(
        f"{where}: a declaration's arguments must be literals or module-level constants bound to literals "
        f"(so the command line can read them without importing the module), not {ast.unparse(node)!r}"
    )
