"""The typed parameter records of the unit kinds: a study's unit ids are the same as before them
(so existing study folders resume), and each record reads back exactly what the plan stored."""

from pathlib import Path

import pytest

from stitchkit.study.config import SCHEMA, load_config
from stitchkit.study.params import PARAMS, StitchParams
from stitchkit.study.plan import plan_study

TINY = Path(__file__).parent / "configs" / "tiny_study.toml"

# Computed with the plan of the commit before the records existed (parameters as plain dicts).
TINY_IDS = [
    ("train", "train resnet18 s0", "0d2f0888683d397a"),
    ("train", "train resnet18 s1", "546a690f3201cba2"),
    ("stitch", "stitch dm resnet18 s0→resnet18 s1", "e6fb5a6994c8966a"),
    ("stitch", "stitch tlm resnet18 s0→resnet18 s1", "864291773b475d79"),
    ("detectors", "detectors resnet18 s1", "1dd959d86ee1e12f"),
    ("ood", "ood dm resnet18 s0→resnet18 s1", "d61fd51c7733d7cb"),
    ("ood", "ood tlm resnet18 s0→resnet18 s1", "c8c27cec9f8a226a"),
    ("similarity", "similarity resnet18 s0↔resnet18 s1", "7f4a8457d20a551b"),
    ("probes", "probes resnet18 s0", "6f23584c1d972fca"),
    ("probes", "probes resnet18 s1", "4352e28a67541573"),
    ("sensitivity", "sensitivity layer2.0", "c3a3884f7f130477"),
    ("specificity", "specificity layer2.0", "36e938ec69e384f8"),
]
# The same study with every method, amp and the original's DM solve (the fields stored only when set).
ALL_METHOD_IDS = [
    ("stitch", "stitch dm resnet18 s0→resnet18 s1", "17a7ab748838a7aa"),
    ("stitch", "stitch tlm resnet18 s0→resnet18 s1", "bd989e345311c361"),
    ("stitch", "stitch tlm_from_dm resnet18 s0→resnet18 s1", "2be169e2cdac0096"),
]


def test_unit_ids_are_those_of_the_untyped_plan(tmp_path):
    units = plan_study(load_config(TINY), tmp_path)
    assert [(u.kind, u.label, u.id) for u in units] == TINY_IDS


def test_optional_stitch_fields_keep_the_ids_of_the_untyped_plan(tmp_path):
    config = load_config(TINY)
    config["stitching"].update(methods=["dm", "tlm", "tlm_from_dm"], amp=True, dm_solver="original")
    assert [(u.kind, u.label, u.id) for u in plan_study(config, tmp_path) if u.kind == "stitch"] == ALL_METHOD_IDS


def test_each_unit_reads_back_what_the_plan_stored(tmp_path):
    config = load_config(TINY)
    config["stitching"].update(methods=["dm", "tlm_from_dm"], dm_solver="original")
    for unit in plan_study(config, tmp_path):
        record = PARAMS[unit.kind].from_params(unit.params)
        assert record.to_params() == unit.params


def test_a_dm_unit_stores_no_training_options_and_reads_the_schema_defaults():
    dm = StitchParams(dataset="digits", seed=0, method="dm", front_layers=["a"], end_layers=["b"], type="auto", fit_samples=10, eval_samples=None)
    stored = dm.to_params()
    assert not {"epochs", "batch_size", "lr", "weight_decay", "train_subset", "amp", "dm_solver"} & set(stored)
    back = StitchParams.from_params(stored)
    assert (back.epochs, back.batch_size, back.lr, back.dm_solver) == (0, SCHEMA["stitching"]["batch_size"].default,
                                                                         SCHEMA["stitching"]["lr"].default, "stitchkit")


def test_unknown_or_missing_parameters_are_refused():
    with pytest.raises(ValueError, match="unknown parameter"):
        StitchParams.from_params({"dataset": "digits", "bogus": 1})
    with pytest.raises(ValueError, match="missing parameter"):
        StitchParams.from_params({"dataset": "digits"})
