"""Adding a similarity measure, an OOD detector or a stitching-layer type is one declaration where it is
defined: a toy of each, declared here in the test file, is computed by the registry, offered by the command
line (parser and --help) and accepted by the study schema. And each built-in is declared once: what the
command line offers is exactly what the declarations say, and a new file in a home package is picked up."""

from __future__ import annotations

import inspect
import math
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from stitchkit import declarations as d
from stitchkit.cli import build_parser, main
from stitchkit.cli.detector_check import training_free_options
from stitchkit.declarations import declare, forget
from stitchkit.errors import StitchkitError
from stitchkit.ood.detectors import (
    Detector,
    KNNDetector,
    MahalanobisDetector,
    list_detectors,
    make_detector,
    training_free_detectors,
)
from stitchkit.similarity import compute, get_measure, list_measures, measure_info
from stitchkit.similarity.base import Measure, Prepared, as_matrix
from stitchkit.stitching.layer_types.base import StitchingLayer, need_rank
from stitchkit.stitching.layers import list_stitching_layers, make_stitching_layer
from stitchkit.stitching.settings import StitchSettings
from stitchkit.study.config import SCHEMA, validate

SEEDS = {"networks": {"seeds": [0]}}


def _subparser(name: str):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[name]


def _choices(parser, dest: str) -> list:
    return list(next(a for a in parser._actions if a.dest == dest).choices)


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# the toys: each declared from this file, forgotten afterwards


@pytest.fixture
def toy_measure():
    @declare(
        "measure",
        "toy_norm_ratio",
        kind="similarity",
        range=(0.0, 1.0),
        symmetric=True,
        invariances={"orthogonal", "permutation"},
        requires_models=False,
        original_policy="flatten",
        description="min(‖X‖_F, ‖Y‖_F) / max(‖X‖_F, ‖Y‖_F)",
        citation="a test's toy",
    )
    class NormRatio(Measure):
        def prepare(self, x) -> Prepared:
            x = as_matrix(x, self.dtype)
            return Prepared(x.shape[0], x.shape[1], extra={"norm": float(torch.linalg.norm(x))})

        def compare(self, a: Prepared, b: Prepared) -> float:
            self._check_pair(a, b)
            small, large = sorted((a.extra["norm"], b.extra["norm"]))
            return small / large

    yield NormRatio
    forget("measure", "toy_norm_ratio")


#: the toy detector's own option, and the pooling option every training-free detector declares alike
TOY_OPTIONS = {
    "scale": {"flag": "--toy-scale", "type": "float", "default": 1.0, "help": "scale of the toy's distances"},
    "pool": {
        "flag": "--pool",
        "type": "str",
        "default": "avg",
        "choices": ("avg", "cls", "flatten"),
        "help": "pooling of activations for the training-free detectors",
    },
}


@pytest.fixture
def toy_detector():
    @declare("detector", "toy_centroid", trains=False, options=TOY_OPTIONS, help="scaled distance to the ID mean")
    class Centroid(Detector):
        score_name = "scaled distance to the mean ID feature"

        def __init__(self, scale: float = 1.0, pool: str = "avg"):
            self.scale, self.pool, self.mean = float(scale), pool, None

        def fit(self, data, labels=None):
            self.mean = torch.as_tensor(data).flatten(1).double().mean(0)
            return self

        def predict(self, x: Tensor) -> Tensor:
            return self.scale * torch.linalg.norm(torch.as_tensor(x).flatten(1).double() - self.mean, dim=1)

    yield Centroid
    forget("detector", "toy_centroid")


@pytest.fixture
def toy_layer():
    @declare("stitching_layer", "toy_flat2v", help="(C,H,W) → (D,): flatten, then Linear")
    class FlatToVec(StitchingLayer):
        def __init__(self, source_shape, target_shape):
            need_rank(self.kind, source_shape[:1], target_shape, 1, 1)
            super().__init__(source_shape, target_shape, nn.Linear(math.prod(source_shape), target_shape[0]))

        def pre_transform(self, x: Tensor) -> Tensor:
            return x.flatten(1)

    yield FlatToVec
    forget("stitching_layer", "toy_flat2v")


# --------------------------------------------------------------------------------------------------
# the registries build and compute them


def test_a_toy_measure_is_computed_by_the_registry_with_its_declared_metadata(toy_measure):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)), 3.0 * rng.normal(size=(20, 6))
    expected = np.linalg.norm(x) / np.linalg.norm(y)  # the closed form, computed independently
    assert get_measure("toy_norm_ratio")(x, y) == pytest.approx(expected, rel=1e-12)
    assert compute("toy_norm_ratio", x, y).value == pytest.approx(expected, rel=1e-12)
    info = measure_info("toy-norm-ratio")
    assert (info.name, info.kind, info.range, info.symmetric, info.requires_models) == (
        "toy_norm_ratio",
        "similarity",
        (0.0, 1.0),
        True,
        False,
    )
    assert info.invariances == frozenset({"orthogonal", "permutation"}) and toy_measure.info is info
    assert list_measures()[-1] == "toy_norm_ratio" and "toy_norm_ratio" in list_measures(requires_models=False)


def test_an_undeclared_measure_class_is_refused_with_the_way_to_declare_it():
    class Undeclared(Measure):
        pass

    with pytest.raises(StitchkitError, match="not declared.*@declare"):
        _ = Undeclared().info


def test_a_toy_detector_is_made_fitted_and_named_by_the_registry(toy_detector):
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(50, 3)), rng.normal(size=(7, 3))
    det = make_detector("toy_centroid", scale=2.0).fit(torch.as_tensor(train))
    expected = 2.0 * np.linalg.norm(test - train.mean(0), axis=1)
    np.testing.assert_allclose(det.predict(torch.as_tensor(test)).numpy(), expected, rtol=1e-12)
    assert det.name == "toy_centroid" and det.describe()["detector"] == "toy_centroid"
    assert list_detectors()[-1] == "toy_centroid" and "toy_centroid" in training_free_detectors()


def test_a_toy_layer_type_is_built_by_make_stitching_layer(toy_layer):
    layer = make_stitching_layer("toy_flat2v", (2, 3, 3), (5,))
    weight, bias = torch.randn(5, 18, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    layer.double().set_affine(weight, bias)
    x = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x.reshape(4, 18) @ weight.T + bias)
    assert layer.kind == "toy_flat2v" and "toy_flat2v" in list_stitching_layers()
    assert StitchSettings(stitching_type="toy_flat2v").stitching_type == "toy_flat2v"
    with pytest.raises(StitchkitError, match="toy_flat2v"):
        make_stitching_layer("toy_flat2v", (2, 3, 3), (5, 2))  # its own shape check names it


# --------------------------------------------------------------------------------------------------
# the command line offers them (parser and --help)


def test_the_command_line_offers_the_toys(toy_measure, toy_detector, toy_layer, capsys):
    parser = build_parser()
    args = parser.parse_args(["similarity", "a.pt", "b.pt", "-", "-", "--measures", "cka", "toy_norm_ratio"])
    assert args.measures == ["cka", "toy_norm_ratio"]
    args = parser.parse_args(["stitch", "a.pt", "b.pt", "-", "-", "l1", "l2", "toy_flat2v"])
    assert args.stitching_type == "toy_flat2v"
    args = parser.parse_args(
        ["detector", "check", "m.pt", "--training-free", "knn", "toy_centroid", "--toy-scale", "3", "--knn-k", "7"]
    )
    assert args.training_free == ["knn", "toy_centroid"]
    options = training_free_options(args)
    assert options["toy_centroid"] == {"scale": 3.0, "pool": "avg"} and options["knn"] == {"k": 7, "pool": "avg"}
    assert "toy_norm_ratio" in _help(["similarity"], capsys)
    assert "toy_norm_ratio" in _help(["sensitivity"], capsys)
    assert "toy_flat2v: (C,H,W) → (D,): flatten, then Linear" in " ".join(_help(["stitch"], capsys).split())
    detector_help = " ".join(_help(["detector", "check"], capsys).split())
    assert "toy_centroid: scaled distance to the ID mean" in detector_help and "--toy-scale" in detector_help
    assert "--toy-scale" in _help(["ood"], capsys)


def test_a_declared_option_below_its_minimum_is_refused_on_the_command_line():
    args = build_parser().parse_args(["ood", "runs", "--knn-k", "0"])
    with pytest.raises(StitchkitError, match="--knn-k must be at least 1, got 0"):
        training_free_options(args)


def test_two_detectors_that_declare_one_flag_differently_are_refused():
    @declare(
        "detector", "toy_other_pool", trains=False, options={"pool": {"flag": "--pool", "default": "cls", "help": "x"}}
    )
    class OtherPool(Detector):
        def predict(self, x):
            return x

    try:
        with pytest.raises(d.DeclarationError, match="--pool"):
            build_parser()
    finally:
        forget("detector", "toy_other_pool")


# --------------------------------------------------------------------------------------------------
# the study schema accepts them


def test_the_study_schema_accepts_the_toys_and_still_refuses_unknown_names(toy_measure, toy_detector, toy_layer):
    config = validate(
        {
            **SEEDS,
            "similarity": {"measures": ["cka", "toy_norm_ratio"]},
            "stitching": {"type": "toy_flat2v"},
            "ood": {"training_free": ["toy_centroid"]},
        }
    )
    assert config["similarity"]["measures"] == ["cka", "toy_norm_ratio"]
    assert config["stitching"]["type"] == "toy_flat2v" and config["ood"]["training_free"] == ["toy_centroid"]
    unknown = (
        ("similarity", "measures", ["no_such"]),
        ("stitching", "type", "no_such"),
        ("ood", "training_free", ["no_such"]),
    )
    for section, key, value in unknown:
        with pytest.raises(StitchkitError, match=f"{section}.{key} has 'no_such'"):
            validate({**SEEDS, section: {key: value}})


def test_a_forgotten_toy_is_no_longer_accepted(toy_layer):
    forget("stitching_layer", "toy_flat2v")
    with pytest.raises(StitchkitError, match="toy_flat2v"):
        validate({**SEEDS, "stitching": {"type": "toy_flat2v"}})


# --------------------------------------------------------------------------------------------------
# each built-in is declared once, and the declarations are what everything offers


def test_what_the_commands_offer_is_what_is_declared():
    declared = d.catalogue("measure")
    arrays = [n for n, decl in declared.items() if not decl.meta["requires_models"]]
    assert _choices(_subparser("similarity"), "measures") == arrays == list_measures(requires_models=False)
    assert _choices(_subparser("sensitivity"), "measures") == list(declared) == list_measures()
    assert _choices(_subparser("stitch"), "stitching_type") == list(d.catalogue("stitching_layer"))
    detector_check = next(a for a in _subparser("detector")._actions if a.dest == "action").choices["check"]
    assert _choices(detector_check, "training_free") == list(training_free_detectors())


def test_the_built_in_stitching_types_keep_the_original_order_and_auto_picks_the_declared_ones():
    # the original script's order of stitching_type, auto and v2v after its own
    assert d.names("stitching_layer") == ("c2c", "t2t", "c2t", "t2c", "rc2c_pre", "rc2c_post", "auto", "v2v")
    # the study schema offers auto first (its default), then the others; v2v too, which its own list had lost
    study_types = ("auto", "c2c", "t2t", "c2t", "t2c", "rc2c_pre", "rc2c_post", "v2v")
    assert tuple(SCHEMA["stitching"]["type"].choices) == study_types
    picks = {(3, 3): "rc2c_pre", (2, 2): "t2t", (3, 2): "c2t", (2, 3): "t2c", (1, 1): "v2v"}
    shapes = {1: (6,), 2: (4, 6), 3: (6, 2, 2)}
    for (src, tgt), kind in picks.items():
        assert make_stitching_layer("auto", shapes[src], shapes[tgt]).kind == kind


def test_every_built_in_declaration_matches_its_implementation():
    for name in d.names("measure"):
        cls = d.implementation("measure", name)
        assert issubclass(cls, Measure) and cls.info.name == name
    for name in d.names("stitching_layer"):
        impl = d.implementation("stitching_layer", name)
        assert d.declaration("stitching_layer", name).get("picks") or issubclass(impl, StitchingLayer)
    assert d.implementation("detector", "mahalanobis") is MahalanobisDetector
    assert d.implementation("detector", "knn") is KNNDetector
    # a detector's declared option defaults are its constructor's (the command line takes the declared ones)
    for name in training_free_detectors():
        signature = inspect.signature(d.implementation("detector", name))
        for option, spec in d.declaration("detector", name).get("options", {}).items():
            assert signature.parameters[option].default == spec["default"], (name, option)


def test_a_new_file_in_a_home_package_is_picked_up_by_the_registry_and_the_command_line(tmp_path, monkeypatch):
    home = tmp_path / "toypkg" / "measures"
    home.mkdir(parents=True)
    (tmp_path / "toypkg" / "__init__.py").write_text("")
    (home / "__init__.py").write_text("")
    (home / "toy_file_measure.py").write_text(
        textwrap.dedent("""
        from stitchkit.declarations import declare
        from stitchkit.similarity.base import Measure

        @declare("measure", "toy_file_measure", kind="distance", range=(0.0, 1.0), symmetric=True, invariances=(),
                 requires_models=False, description="a toy in a file of its own", citation="none")
        class FileMeasure(Measure):
            pass
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(d, "PACKAGE_DIR", tmp_path / "toypkg")
    monkeypatch.setattr(d, "PACKAGE", "toypkg")
    monkeypatch.setitem(d.KINDS, "measure", d.ThingKind("similarity measure", ("measures",)))
    d._scanned.cache_clear()
    try:
        assert "toypkg.measures.toy_file_measure" not in sys.modules
        # read from the file, not imported (the built-ins follow: their modules declared them when imported)
        assert list_measures()[0] == "toy_file_measure" and "toypkg.measures.toy_file_measure" not in sys.modules
        assert _choices(_subparser("similarity"), "measures")[0] == "toy_file_measure"
        assert measure_info("toy_file_measure").description == "a toy in a file of its own"
        assert "toypkg.measures.toy_file_measure" in sys.modules
    finally:
        monkeypatch.undo()
        d._scanned.cache_clear()
        forget("measure", "toy_file_measure")
        sys.modules.pop("toypkg.measures.toy_file_measure", None)
    assert "toy_file_measure" not in list_measures()
