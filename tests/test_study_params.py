"""The typed parameter records of the unit kinds: a unit's stored parameters are the same as before them
(so existing study folders resume: the ids below are version-1 ids, :func:`~stitchkit.study.migrate.legacy_unit_id`,
which the store upgrade recognises), and each record reads back exactly what the plan stored. Since
what trains through a network follows its augmentation, an id changes exactly where the images do."""

from pathlib import Path

import pytest
from stitch_support import SHAPE, resnet

from stitchkit.errors import StitchkitError
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.study.config import SCHEMA, load_config, validate
from stitchkit.study.migrate import legacy_unit_id
from stitchkit.study.params import record_of
from stitchkit.study.plan import plan_study
from stitchkit.study.unit_kinds.stitch import StitchParams

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
# The tiny study's networks are trained with augment = false. Since augmentation follows the networks,
# TLM and the detectors' pre-training train on un-augmented images (new ids; the OOD tests use those
# detectors); DM, the probes (un-augmented before and now) and the rest keep theirs.
AUGMENT_CHANGED = {
    "stitch tlm resnet18 s0→resnet18 s1": "63d21e3fea235c04",
    "detectors resnet18 s1": "59e883b8e08b1235",
    "ood dm resnet18 s0→resnet18 s1": "119d613dfabe5135",
    "ood tlm resnet18 s0→resnet18 s1": "bf2088680fb61529",
}


def legacy_plan(config, study_dir):
    """The plan's units as (kind, label, version-1 id), the id the units of stores before version 2 have."""
    units, legacy = plan_study(config, study_dir), {}
    for u in units:
        legacy[u.id] = legacy_unit_id(u.kind, u.params, [legacy[d] for d in u.deps])
    return [(u.kind, u.label, legacy[u.id]) for u in units], units


# The similarity units compute their bootstrap intervals and permutation null themselves, so the
# [uncertainty] defaults (on) are part of their parameters: a new id. Switched off, they keep the old one.
UNCERTAINTY_CHANGED = {"similarity resnet18 s0↔resnet18 s1": "f72af1e23a4386fa"}


# The similarity policy's default became pool (one computation for every cell of a matrix) from the
# original's auto_original: the units that compute indices have new ids; naming auto_original keeps the old.
POLICY_CHANGED = {
    "similarity resnet18 s0↔resnet18 s1": "1cbfbdf35461528f",
    "sensitivity layer2.0": "0fd96689657abd65",
    "specificity layer2.0": "d6cc916932f242da",
}
POLICY_AND_UNCERTAINTY_CHANGED = {**POLICY_CHANGED, "similarity resnet18 s0↔resnet18 s1": "50e116eb90239e24"}


def test_unit_ids_are_those_of_the_untyped_plan_unless_the_images_or_the_policy_changed(tmp_path):
    planned, _ = legacy_plan(load_config(TINY), tmp_path)
    assert planned == [
        (k, label, {**AUGMENT_CHANGED, **POLICY_AND_UNCERTAINTY_CHANGED}.get(label, i)) for k, label, i in TINY_IDS
    ]
    config = load_config(TINY)
    config["similarity"]["policy"] = "auto_original"
    planned, _ = legacy_plan(config, tmp_path)
    assert planned == [(k, label, {**AUGMENT_CHANGED, **UNCERTAINTY_CHANGED}.get(label, i)) for k, label, i in TINY_IDS]


def test_uncertainty_off_keeps_the_similarity_ids_of_the_untyped_plan(tmp_path):
    config = load_config(TINY)
    config["uncertainty"].update(similarity_bootstrap=0, permutations=0)
    planned, _ = legacy_plan(config, tmp_path)
    assert planned == [(k, label, {**AUGMENT_CHANGED, **POLICY_CHANGED}.get(label, i)) for k, label, i in TINY_IDS]
    config["similarity"]["policy"] = "auto_original"
    planned, _ = legacy_plan(config, tmp_path)
    assert planned == [(k, label, AUGMENT_CHANGED.get(label, i)) for k, label, i in TINY_IDS]


def test_asking_for_the_old_augmentation_keeps_the_old_ids(tmp_path):
    config = load_config(TINY)
    config["stitching"]["augment"] = "dataset"  # what TLM always trained on before
    ids = {label: i for _, label, i in legacy_plan(config, tmp_path)[0]}
    assert ids["stitch tlm resnet18 s0→resnet18 s1"] == "864291773b475d79"
    # the detectors cannot: pre-training on the dataset's augmentation and the ID half on none was one
    # choice for both before; ood.augment = dataset augments both, none neither
    for choice, changed in (("dataset", {"finetune_id_augment": True}), ("none", {"augment": False})):
        config["ood"]["augment"] = choice
        planned, units = legacy_plan(config, tmp_path)
        detectors = next(u for u in units if u.kind == "detectors")
        assert {k: v for k, v in detectors.params.items() if "augment" in k} == changed
        assert next(i for k, _, i in planned if k == "detectors") != "1dd959d86ee1e12f"


def test_optional_stitch_fields_keep_the_ids_of_the_untyped_plan(tmp_path):
    config = load_config(TINY)
    config["stitching"].update(methods=["dm", "tlm", "tlm_from_dm"], amp=True, dm_solver="original", augment="dataset")
    assert [p for p in legacy_plan(config, tmp_path)[0] if p[0] == "stitch"] == ALL_METHOD_IDS
    config["stitching"]["augment"] = "network"  # the networks' own: none, so the two that train change
    changed = [(label, i) for k, label, i in legacy_plan(config, tmp_path)[0] if k == "stitch"]
    assert [same == (label, i) for same, (_, label, i) in zip(changed, ALL_METHOD_IDS)] == [True, False, False]
    assert [u.params.get("augment") for u in plan_study(config, tmp_path) if u.kind == "stitch"] == [None, False, False]


def _checkpoint(path: Path, seed: int, training: dict | None) -> str:
    save_checkpoint(path, resnet(seed), dataset="digits", input_shape=SHAPE, training=training)
    return str(path)


def test_given_checkpoints_are_followed_by_their_records_at_plan_time(tmp_path):
    """Network units: the plan reads each checkpoint's record. The end network decides TLM's and the
    detectors' augmentation, each network its own probes' (and the tests' probes, per network)."""
    paths = [
        _checkpoint(tmp_path / f"n{i}.pt", i, training)
        for i, training in enumerate(({"augment": True}, {"augment": False}, None))
    ]
    config = load_config(TINY)
    config["networks"].update(checkpoints=paths)
    config["stitching"].update(pairs="all", methods=["tlm"])
    config["ood"]["enabled"] = False
    units = plan_study(config, tmp_path)
    ids = [u.id for u in units if u.kind == "network"]
    tlm = {(ids.index(u.deps[0]), ids.index(u.deps[1])): u.params.get("augment") for u in units if u.kind == "stitch"}
    # only into the network trained without augmentation is TLM un-augmented; a record of nothing = the dataset's
    assert tlm == {(0, 1): False, (2, 1): False, (1, 0): None, (2, 0): None, (0, 2): None, (1, 2): None}
    probes = [u.params.get("augment") for u in units if u.kind == "probes"]
    assert probes == [True, None, True]
    sensitivity = next(u for u in units if u.kind == "sensitivity")
    assert sensitivity.params["probe_augment"] == [True, False, True] and "tlm_augment" not in sensitivity.params
    config["sensitivity"]["measures"] = ["cka", "tlm_accuracy"]
    sensitivity = next(u for u in plan_study(config, tmp_path) if u.kind == "sensitivity")
    assert sensitivity.params["tlm_augment"] == [True, False, True]


def test_a_bad_augmentation_is_refused_naming_the_key_and_the_choices():
    for section in ("stitching", "ood", "probes"):
        with pytest.raises(
            StitchkitError, match=rf"study config: {section}\.augment has 'foo'; allowed: network, dataset, none"
        ):
            validate({"networks": {"seeds": [0]}, section: {"augment": "foo"}})


def test_each_unit_reads_back_what_the_plan_stored(tmp_path):
    config = load_config(TINY)
    config["stitching"].update(methods=["dm", "tlm_from_dm"], dm_solver="original")
    for unit in plan_study(config, tmp_path):
        record = record_of(unit.kind).from_params(unit.params)
        assert record.to_params() == unit.params


def test_a_dm_unit_stores_no_training_options_and_reads_the_schema_defaults():
    dm = StitchParams(
        dataset="digits",
        seed=0,
        method="dm",
        front_layers=["a"],
        end_layers=["b"],
        type="auto",
        fit_samples=10,
        eval_samples=None,
    )
    stored = dm.to_params()
    assert not {"epochs", "batch_size", "lr", "weight_decay", "train_subset", "amp", "dm_solver"} & set(stored)
    back = StitchParams.from_params(stored)
    assert (back.epochs, back.batch_size, back.lr, back.dm_solver) == (
        0,
        SCHEMA["stitching"]["batch_size"].default,
        SCHEMA["stitching"]["lr"].default,
        "stitchkit",
    )


def test_unknown_or_missing_parameters_are_refused():
    with pytest.raises(ValueError, match="unknown parameter"):
        StitchParams.from_params({"dataset": "digits", "bogus": 1})
    with pytest.raises(ValueError, match="missing parameter"):
        StitchParams.from_params({"dataset": "digits"})
