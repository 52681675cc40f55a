"""Adding a dataset, a model family or a study unit kind is one declaration where it is defined
(stitchkit.declarations): toys declared here, at run time, are loaded, built and run by the registries,
listed by `stitchkit datasets` / `stitchkit models`, accepted by the study, and, for the unit kind,
planned by its own planner with its own config section, in a tiny study that trains a toy network on the
toy data and runs a toy unit on it (nothing else is patched)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn

from stitchkit import declarations as d
from stitchkit.cli import main
from stitchkit.data import catalog as data_catalog
from stitchkit.data import dataset_info, get_dataset, list_datasets
from stitchkit.data.base import LoadRequest
from stitchkit.data.datasets import TensorImageDataset
from stitchkit.models import catalog as model_catalog
from stitchkit.models import get_model, list_models, model_options
from stitchkit.models.registry import family_builder, model_entry
from stitchkit.study.config import SCHEMA, Key, load_config, validate
from stitchkit.study.plan import plan_study, planning_order
from stitchkit.study.planning import PlanContext, Planned
from stitchkit.study.report import write_report
from stitchkit.study.runner import check_rerun, run_study
from stitchkit.study.store import Store
from stitchkit.study.units import Unit, UnitContext, unit_kind, unit_planner

#: images per split of the toy set
TOY_SIZES = {"train": 96, "test": 48}


def load_stripes(req: LoadRequest) -> TensorImageDataset:
    """Class 0: horizontal stripes, class 1: vertical ones, with a little noise (an 8×8 grey toy set)."""
    rng = np.random.default_rng(0 if req.split == "train" else 1)
    n = TOY_SIZES[req.split]
    labels = np.arange(n, dtype=np.int64) % 2
    stripes = (np.arange(8) % 2).astype(np.float32)
    images = np.where(labels[:, None, None] == 0, stripes[None, :, None], stripes[None, None, :]) * np.ones(
        (n, 8, 8), np.float32
    )
    images = np.clip(images + 0.1 * rng.standard_normal(images.shape).astype(np.float32), 0, 1)
    return TensorImageDataset(torch.from_numpy(images[:, None]), labels)


class ToyNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, pixels: int, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * pixels, width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)
        self.stitchable_layers = ["body"]

    def forward(self, x):
        return self.head(self.body(x))


def build_toy(num_classes, in_channels, input_size, *, width, depth):
    assert depth == 1  # the member's fixed build argument arrives
    return ToyNet(num_classes, in_channels, input_size[0] * input_size[1], width)


def run_toy_count(unit: Unit, ctx: UnitContext) -> dict:
    """Counts the network's test accuracy into a table: what a unit kind returns."""
    network = ctx.deps[unit.deps[0]]
    value = network["metrics"]["test_acc"] * unit.params["scale"]
    return {"metrics": {"value": value, "tables": {"toy table": [{"scaled accuracy": value}]}}}


#: the toy kind's own section of the study config, [toy] (named by its declaration's config_section)
SECTION = {"scale": Key(float, 2.0, "toy: the factor", check=lambda v: v > 0, check_text="must be > 0")}


def plan_toy_count(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """The toy kind's own planner (named by its declaration): one unit on the first network, planned
    after every kind declared before it, from its own config section."""
    assert list(planned) == [k for k in planning_order() if k in planned]  # the kinds before it, in order
    return [Unit("toy_count", {"scale": ctx.config["toy"]["scale"]}, (ctx.networks[0].id,), "toy count")]


@pytest.fixture
def toys():
    """The toy dataset, model family and unit kind, declared as a contributor's module would (here at run time)."""
    d.declare(
        "dataset",
        "toy_stripes",
        num_classes=2,
        shape=(1, 8, 8),
        description="Toy stripes, horizontal or vertical.",
        expected_files="nothing (generated)",
        how_to_get="nothing to install.",
        aliases=("stripes",),
    )(load_stripes)
    d.declare(
        "model_family",
        "toy_family",
        title="toy networks",
        input_size=(8, 8),
        options={"width": {"default": 6, "kind": "int", "help": "hidden units", "minimum": 1}},
        description="a toy network of depth {depth} and width {width}",
        members={"toy_net": {"args": {"depth": 1}}},
    )(build_toy)
    d.declare(
        "unit_kind",
        "toy_count",
        help="toy: scale the network's accuracy",
        uses_gpu=False,
        planner="plan_toy_count",
        config_section="toy",
        title="Toy counts",
        intro="One row per toy unit.",
    )(run_toy_count)
    try:
        yield
    finally:
        for kind, name in (("dataset", "toy_stripes"), ("model_family", "toy_family"), ("unit_kind", "toy_count")):
            d.forget(kind, name)
    assert "toy_stripes" not in list_datasets() and "toy_net" not in list_models() and "toy" not in SCHEMA


def test_a_declared_dataset_is_listed_and_loaded(toys, capsys):
    assert list_datasets()[-1] == "toy_stripes"
    info = dataset_info("stripes")  # by its alias
    assert (info.name, info.num_classes, info.shape) == ("toy_stripes", 2, (1, 8, 8))
    train = get_dataset("toy_stripes", "train")
    image, label = train[1]
    assert len(train) == 96 and image.shape == (1, 8, 8) and label == 1
    assert image[0, :, 1].mean() > 0.8 and image[0, :, 0].mean() < 0.2  # vertical stripes, as the loader made them
    assert get_dataset("toy_stripes@1x16x16", "test")[0][0].shape == (1, 16, 16)  # converted to the asked shape
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "  toy_stripes " in out and "Toy stripes, horizontal or vertical. (also stripes)" in out


def test_a_declared_model_family_is_listed_and_built(toys, capsys):
    assert list_models()[-1] == "toy_net"
    assert model_options("toy_net") == {"width": 6}
    assert model_entry("toy_net").description == "a toy network of depth 1 and width 6"
    assert family_builder(model_catalog.models()["toy_net"]) is build_toy
    model = get_model("toy_net", num_classes=2, in_channels=1, width=3)
    assert (
        isinstance(model, ToyNet) and model.body[1].out_features == 3 and model.stitchkit_spec["input_size"] == [8, 8]
    )
    with pytest.raises(Exception, match="option 'width' must be an integer ≥ 1"):
        get_model("toy_net", width=0)
    assert main(["models"]) == 0
    assert "toy networks: toy_net  [options: width=6]" in capsys.readouterr().out


def test_the_registry_and_the_report_see_a_declared_unit_kind(toys):
    kind = unit_kind("toy_count")
    assert kind.run is run_toy_count and not kind.uses_gpu and kind.description == "toy: scale the network's accuracy"
    assert unit_planner("toy_count") is plan_toy_count and planning_order()[-1] == "toy_count"


def test_a_declared_unit_kind_brings_its_config_section(toys, capsys):
    assert list(SCHEMA)[-3:] == ["toy", "uncertainty", "findings"] and SCHEMA["toy"] is SECTION
    assert validate({"networks": {"seeds": [0]}, "toy": {"scale": 3}})["toy"] == {"scale": 3}
    with pytest.raises(Exception, match=r"toy\.scale must be > 0, got -1"):
        validate({"networks": {"seeds": [0]}, "toy": {"scale": -1}})
    assert main(["study", "--schema"]) == 0
    assert "[toy]\n# scale = 2.0  — toy: the factor" in capsys.readouterr().out
    assert check_rerun(["toy_count"]) == {"toy_count"}
    with pytest.raises(Exception, match="toy_count"):  # the known kinds are listed
        check_rerun(["toy_cunt"])


def test_a_tiny_study_trains_a_toy_network_on_toy_data_and_runs_a_toy_unit(toys, tmp_path):
    disabled = "\n".join(
        f"[{s}]\nenabled = false" for s in ("stitching", "similarity", "ood", "probes", "sensitivity", "specificity")
    )
    config = tmp_path / "toy.toml"
    config.write_text(
        textwrap.dedent("""
        [study]
        name = "toy"
        dataset = "toy_stripes"
        device = "cpu"

        [networks]
        model = "toy_net"
        options = { width = 4 }
        seeds = [0]
        epochs = 2
        batch_size = 16
        augment = false
    """)
        + disabled
        + "\n"
    )
    loaded = load_config(config)  # the schema takes the toys' names, and the toy kind's section
    assert (loaded["study"]["dataset"], loaded["networks"]["model"]) == ("toy_stripes", "toy_net")
    assert loaded["toy"] == {"scale": 2.0}
    # the study plans the toy unit with the toy kind's own planner, after the declared kinds
    units = plan_study(loaded, tmp_path / "study")
    assert [u.kind for u in units] == ["train", "toy_count"] and units[1].deps == (units[0].id,)
    summary = run_study(config, tmp_path / "study", progress=False)
    assert summary.counts["done"] == 2 and summary.counts["failed"] == 0
    with Store(tmp_path / "study" / "study.sqlite") as store:
        records = {r.kind: r for r in store.all()}
    accuracy = records["train"].metrics["test_acc"]
    assert 0 <= accuracy <= 1 and records["toy_count"].metrics["value"] == pytest.approx(2 * accuracy)
    text = write_report(tmp_path / "study").read_text()
    assert "<h2>Toy counts</h2><p class=intro>One row per toy unit.</p>" in text
    assert text.index("Base networks") < text.index("Toy counts")  # after the declared kinds, in declaration order


def test_a_declaration_missing_what_its_kind_needs_is_refused_with_its_place():
    d.declare("dataset", "toy_shapeless", num_classes=2, description="no shape", expected_files="-", how_to_get="-")(
        load_stripes
    )
    try:
        with pytest.raises(d.DeclarationError, match="dataset 'toy_shapeless' .*needs 'shape'"):
            data_catalog.entries()
    finally:
        d.forget("dataset", "toy_shapeless")
    d.declare("model_family", "toy_bad", title="bad", members={"toy_bad_net": {"argz": {}}})(build_toy)
    try:
        with pytest.raises(d.DeclarationError, match="no member key 'argz'"):
            model_catalog.models()
    finally:
        d.forget("model_family", "toy_bad")
