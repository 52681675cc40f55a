"""The declaration mechanism (stitchkit.declarations): read from source without importing, merged with
run-time declarations, and every malformed declaration refused with its place."""

from __future__ import annotations

import sys
import textwrap

import pytest

from stitchkit import declarations as d
from stitchkit.errors import StitchkitError


def _write(tmp_path, text: str):
    path = tmp_path / "things.py"
    path.write_text(textwrap.dedent(text))
    return path


def test_source_declarations_are_read_with_their_literal_metadata(tmp_path):
    path = _write(
        tmp_path,
        """
        import a_module_that_does_not_exist  # the reader never executes the file
        HELP = "a " + "toy"
        OPTIONS = {"width": (1, -2.5), "modes": ["a", "b"]}

        @declare("measure", "toy", help=HELP, options=OPTIONS, requires_models=False, order=3)
        class Toy:
            pass

        def build():
            pass

        stitchkit.declarations.declare("detector", "toy_detector", tags={"x"})(build)
    """,
    )
    found = d._declarations_in(path, "pkg.things")
    assert [(x.kind, x.name, x.module) for x in found] == [
        ("measure", "toy", "pkg.things"),
        ("detector", "toy_detector", "pkg.things"),
    ]
    assert dict(found[0].meta) == {
        "help": "a toy",
        "options": {"width": (1, -2.5), "modes": ["a", "b"]},
        "requires_models": False,
        "order": 3,
    }
    assert found[0].order == 3 and found[1].order == float("inf")
    assert found[1].meta["tags"] == frozenset({"x"})
    assert found[0].source.endswith("things.py:6")


@pytest.mark.parametrize(
    "bad, words",
    [
        ('@declare("measure", "toy", help=make_help())', "must be literals"),
        ('@declare("measure", "toy", **OPTIONS)', "name each argument"),
        ('@declare("measure")', "takes the kind and the name"),
        ('@declare("no_such_kind", "toy")', "kind of declaration"),
    ],
)
def test_a_declaration_that_cannot_be_read_without_importing_is_refused_with_its_place(tmp_path, bad, words):
    path = _write(tmp_path, f"OPTIONS = {{}}\n{bad}\nclass Toy:\n    pass\n")
    with pytest.raises(StitchkitError, match=words) as err:
        d._declarations_in(path, "pkg.things")
    if "kind of declaration" not in words:
        assert "things.py:2" in str(err.value)


def test_a_constant_bound_to_itself_is_refused_not_looped(tmp_path):
    path = _write(tmp_path, 'A = B\nB = A\n@declare("measure", "toy", help=A)\nclass Toy:\n    pass\n')
    with pytest.raises(d.DeclarationError, match="loop"):
        d._declarations_in(path, "pkg.things")


def test_run_time_declarations_join_the_catalogue_after_the_scanned_ones_and_can_be_forgotten():
    before = d.names("measure")

    @d.declare("measure", "toy_runtime_measure", requires_models=True, help="a toy")
    class ToyMeasure:
        pass

    try:
        assert d.names("measure") == (*before, "toy_runtime_measure")
        assert "toy_runtime_measure" in d.names("measure", requires_models=True)
        assert "toy_runtime_measure" not in d.names("measure", requires_models=False)
        assert d.implementation("measure", "toy_runtime_measure") is ToyMeasure
        assert d.declaration("measure", "toy_runtime_measure").meta["help"] == "a toy"
    finally:
        d.forget("measure", "toy_runtime_measure")
    assert d.names("measure") == before
    with pytest.raises(StitchkitError, match="toy_runtime_measure"):
        d.declaration("measure", "toy_runtime_measure")


def test_one_name_declared_by_two_modules_is_refused():
    def one():
        pass

    def two():
        pass

    two.__module__ = "somewhere.else"
    d.declare("detector", "toy_twice")(one)
    try:
        with pytest.raises(d.DeclarationError, match="declared twice"):
            d.declare("detector", "toy_twice")(two)
    finally:
        d.forget("detector", "toy_twice")


def test_implementation_imports_the_defining_module_once_and_checks_it_declared_the_name(tmp_path, monkeypatch):
    (tmp_path / "toy_home.py").write_text(
        textwrap.dedent("""
        from stitchkit.declarations import declare

        @declare("detector", "toy_imported", help="imported on demand")
        class ToyDetector:
            pass
    """)
    )
    (tmp_path / "toy_silent.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scanned = {
        "toy_imported": d.Declaration("detector", "toy_imported", "toy_home", "toy_home.py:4"),
        "toy_silent": d.Declaration("detector", "toy_silent", "toy_silent", "toy_silent.py:1"),
    }
    monkeypatch.setattr(d, "_scanned", lambda kind: scanned if kind == "detector" else {})
    try:
        assert "toy_home" not in sys.modules
        cls = d.implementation("detector", "toy_imported")
        assert cls.__name__ == "ToyDetector" and "toy_home" in sys.modules
        with pytest.raises(d.DeclarationError, match="did not declare"):
            d.implementation("detector", "toy_silent")
    finally:
        d.forget("detector", "toy_imported")
        sys.modules.pop("toy_home", None)
        sys.modules.pop("toy_silent", None)


def test_unknown_kind_and_bad_name_are_refused():
    with pytest.raises(StitchkitError, match="kind of declaration"):
        d.catalogue("measures")
    with pytest.raises(d.DeclarationError, match="non-empty name"):
        d.declare("measure", "")


def test_constants_imported_from_a_sibling_module_are_read_from_its_file(tmp_path):
    (tmp_path / "shared.py").write_text('import torch  # never executed\nBASE = {"kind": "int"}\nWIDTH = BASE\n')
    path = tmp_path / "things.py"
    toy = '@declare("measure", "toy", options={})\nclass Toy:\n    pass\n'
    path.write_text("from .shared import WIDTH as W, NOT_THERE\n" + toy.format("W"))
    (found,) = d._declarations_in(path, "pkg.things")
    assert found.meta["options"] == {"kind": "int"}
    path.write_text("from .shared import NOT_THERE\n" + toy.format("NOT_THERE"))
    with pytest.raises(d.DeclarationError, match="must be literals"):
        d._declarations_in(path, "pkg.things")
