"""Rules of the code's structure that a reviewer would otherwise check by hand (issue 21): short
signatures with settings records, no reaching into another module's private names, and no product
module named like a test file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "stitchkit"
MODULES = sorted(SRC.rglob("*.py"))
#: the most parameters a public function or constructor takes apart from a settings record; more options go
#: into the record
MAX_PARAMETERS = 8
#: a settings record's parameter: by name, by the record's type (``…Settings``, ``…Options``, ``…Config``,
#: ``…Spec``, ``…Convention``), or ``**options`` checked against a record's fields
RECORD_NAMES = ("settings", "config", "options")
RECORD_TYPES = ("Settings", "Options", "Config", "Spec", "Convention")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_record(arg: ast.arg) -> bool:
    annotation = ast.unparse(arg.annotation) if arg.annotation is not None else ""
    types = [t.strip().strip("'\"") for t in annotation.split("|")]
    return arg.arg in RECORD_NAMES or any(t.endswith(RECORD_TYPES) for t in types if t != "None")


def _parameter_count(args: ast.arguments) -> int:
    """The parameters a caller can pass, not counting ``self``/``cls`` and the settings record (with the
    ``**options`` checked against its fields)."""
    given = [*args.posonlyargs, *args.args, *args.kwonlyargs, *(a for a in (args.vararg, args.kwarg) if a)]
    given = [a for a in given if a.arg not in ("self", "cls")]
    return len([a for a in given if not _is_record(a)])


def _public_functions(tree: ast.Module):
    """Module-level functions and methods of module-level classes that a caller may use (constructors
    included), with their qualified names."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    not item.name.startswith("_") or item.name == "__init__"
                ):
                    yield f"{node.name}.{item.name}", item


def test_no_public_function_takes_more_than_a_handful_of_parameters():
    long = []
    for path in MODULES:
        for name, node in _public_functions(_tree(path)):
            count = _parameter_count(node.args)
            if count > MAX_PARAMETERS:
                long.append(f"{path.relative_to(SRC)}:{name} takes {count}")
    assert not long, "pass a settings record instead:\n" + "\n".join(sorted(long))


def test_no_module_imports_another_modules_private_names():
    reaching = []
    for path in MODULES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    reaching.append(
                        f"{path.relative_to(SRC)}: from {'.' * node.level}{node.module or ''} import {private}"
                    )
    assert not reaching, "make the name public in its one home, or move it:\n" + "\n".join(reaching)


def test_no_product_module_is_named_like_a_test_file():
    assert not [p for p in MODULES if p.name.startswith("test_") or p.name.endswith("_test.py")]


@pytest.mark.parametrize(
    "source, count",
    [
        ("def f(a, b, *, c=1, **kw): pass", 4),
        ("class A:\n    def m(self, a, *args): pass", 2),
        ("def f(a, settings=None, **options): pass", 1),
        ("def f(a, how: ExtractionSettings | None = None, more: GridOptions = None): pass", 1),
    ],
)
def test_the_parameter_count_counts_what_a_caller_can_pass(tmp_path, source, count):
    tree = ast.parse(source)
    assert [_parameter_count(node.args) for _, node in _public_functions(tree)] == [count]
