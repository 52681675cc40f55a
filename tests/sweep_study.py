"""Grown bad-input cases: see tests/grown_sweep.py for the contract (build, CLI_CASES, API_CASES).

Study configs with one mistake each that a researcher would make, refused before anything is written
(issue 18 part 3): the stitching type against the layers' shapes, layers that each network must have
(networks of different architectures), the OOD section's names, ranges, and enabled sections that
would run nothing. Each config starts from :func:`_base` (two tiny digits ResNet-18 checkpoints, every
method off) and changes what its case is about; were the mistake not caught, the study would run (and
fail or finish with nothing) and leave its folder, which the sweep reports."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from bad_inputs import Case
from grown_sweep import ApiCase

from stitchkit.models import get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.study.config import toml_value

FOLDER = "cfg_grown"
STUDY = "study {W}/" + FOLDER + "/%s --out {O}/s --no-progress --no-report"
OFF = ("stitching", "similarity", "ood", "probes", "sensitivity", "specificity")
#: one stitch grid of one layer pair, fast if it ever ran
ONE_PAIR = {"enabled": True, "methods": ["dm"], "fit_samples": 32, "eval_samples": 32}
ONE_LAYER = {"front": ["layer4.1"], "end": ["layer4.1"]}
#: the OOD test of that grid with tiny detectors
OOD = {
    "enabled": True,
    "pretrain_epochs": 1,
    "finetune_epochs": 1,
    "batch_size": 8,
    "train_subset": 16,
    "eval_samples": 32,
    "detector_options": {"width": 4},
}


def _save(world: Path, name: str, model_name: str, seed: int, **options) -> None:
    torch.manual_seed(seed)
    model = get_model(model_name, num_classes=10, in_channels=1, input_size=(28, 28), **options)
    save_checkpoint(world / name / "final.pt", model, dataset="digits", input_shape=(1, 28, 28))


def _base(world: Path, checkpoints: tuple[str, ...]) -> dict:
    return {
        "study": {"name": "grown", "dataset": "digits", "device": "cpu"},
        "networks": {"checkpoints": [f"{world}/{c}/final.pt" for c in checkpoints]},
        **{s: {"enabled": False} for s in OFF},
    }


def _write(path: Path, config: dict, changes: dict) -> None:
    """``config`` with ``changes`` (section → keys) merged in, as TOML."""
    config = {**config, **{s: {**config.get(s, {}), **copy.deepcopy(keys)} for s, keys in changes.items()}}
    path.write_text(
        "\n".join(
            f"[{s}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items()) for s, keys in config.items()
        )
    )


#: name → (changes to the base config, checkpoints or None for ck0 and ck1); see CLI_CASES for each one's mistake
CONFIGS: dict[str, tuple[dict, tuple[str, ...] | None]] = {
    # the five of the issue
    "t2t_conv.toml": ({"stitching": {**ONE_PAIR, "type": "t2t"}, "layers": ONE_LAYER}, None),
    "all_two_architectures.toml": ({"stitching": ONE_PAIR}, ("ck0", "cnn0")),
    "stitch_eval_zero.toml": ({"stitching": {**ONE_PAIR, "eval_samples": 0}, "layers": ONE_LAYER}, None),
    "detector_typo.toml": (
        {"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "detector": "repr_cls_resnet81"}},
        None,
    ),
    "outliers_typo.toml": (
        {"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "outliers": "natural_patches_grey"}},
        None,
    ),
    "no_methods.toml": ({"stitching": {**ONE_PAIR, "methods": []}, "layers": ONE_LAYER}, None),
    # stitching types against the shapes, as the grid builds them
    "c2c_sizes_differ.toml": (
        {"stitching": {**ONE_PAIR, "type": "c2c"}, "layers": {"front": ["layer1.0"], "end": ["layer4.1"]}},
        None,
    ),
    "c2c_all_layers.toml": ({"stitching": {**ONE_PAIR, "type": "c2c"}}, None),
    "rc2c_post_dm.toml": (
        {"stitching": {**ONE_PAIR, "type": "rc2c_post"}, "layers": {"front": ["layer4.1"], "end": ["layer1.0"]}},
        None,
    ),
    "rc2c_post_tlm_from_dm.toml": (
        {
            "stitching": {**ONE_PAIR, "type": "rc2c_post", "methods": ["tlm_from_dm"], "epochs": 1},
            "layers": {"front": ["layer4.1"], "end": ["layer1.0"]},
        },
        None,
    ),
    "c2t_conv.toml": ({"stitching": {**ONE_PAIR, "type": "c2t"}, "layers": ONE_LAYER}, None),
    "v2v_conv.toml": ({"stitching": {**ONE_PAIR, "type": "v2v"}, "layers": ONE_LAYER}, None),
    "t2c_from_conv.toml": ({"stitching": {**ONE_PAIR, "type": "t2c"}, "layers": ONE_LAYER}, None),
    "c2c_vit_tokens.toml": (
        {"stitching": {**ONE_PAIR, "type": "c2c"}, "layers": {"front": ["blocks.1"], "end": ["blocks.1"]}},
        ("vit0", "vit1"),
    ),
    # layers each network must have
    "end_layer_other_arch.toml": ({"stitching": ONE_PAIR, "layers": {"end": ["layer4.1"]}}, ("ck0", "cnn0")),
    "self_pairs_two_architectures.toml": ({"stitching": {**ONE_PAIR, "pairs": "self"}}, ("cnn0", "ck0")),
    "similarity_two_architectures.toml": ({"similarity": {"enabled": True, "n_samples": 32}}, ("ck0", "cnn0")),
    "probes_two_architectures.toml": (
        {"probes": {"enabled": True, "layers": ["relu1"], "epochs": 1, "train_subset": 32}},
        ("cnn0", "ck0"),
    ),
    "sensitivity_two_architectures.toml": (
        {"sensitivity": {"enabled": True, "layer": "relu3", "measures": ["cka"]}},
        ("cnn0", "ck0"),
    ),
    "specificity_two_architectures.toml": ({"specificity": {"enabled": True, "measures": ["cka"]}}, ("ck0", "cnn0")),
    "sensitivity_rank_narrow_network.toml": (
        {"sensitivity": {"enabled": True, "layer": "layer3.0", "ranks": [12], "measures": ["cka"]}},
        ("ck0", "narrow0"),
    ),
    "front_layers_empty.toml": ({"stitching": ONE_PAIR, "layers": {"front": [], "end": ["layer4.1"]}}, None),
    "probe_layers_empty.toml": ({"probes": {"enabled": True, "layers": [], "epochs": 1}}, None),
    # the OOD section's names
    "sanity_typo.toml": ({"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "sanity": "digit"}}, None),
    "finetune_id_typo.toml": (
        {"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "finetune_id": "cifar5mil"}},
        None,
    ),
    "finetune_id_classes.toml": (
        {"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "finetune_id": "cifar100"}},
        None,
    ),
    "detector_not_an_architecture.toml": (
        {"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "detector": "repr_cls"}},
        None,
    ),
    "detector_option_unknown.toml": (
        {"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "detector_options": {"widht": 4}}},
        None,
    ),
    "detector_width_zero.toml": (
        {"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "detector_options": {"width": 0}}},
        None,
    ),
    "token_detector_on_conv.toml": (
        {
            "stitching": ONE_PAIR,
            "layers": ONE_LAYER,
            "ood": {**OOD, "detector": "repr_cls_vit_tiny", "detector_options": {}},
        },
        None,
    ),
    "conv_detector_on_vit.toml": (
        {"stitching": {**ONE_PAIR, "type": "t2t"}, "layers": {"front": ["blocks.1"], "end": ["blocks.1"]}, "ood": OOD},
        ("vit0", "vit1"),
    ),
    "ood_no_detectors.toml": (
        {"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "energy": False, "training_free": []}},
        None,
    ),
    "ood_eval_zero.toml": ({"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "eval_samples": 0}}, None),
    "ood_batch_one.toml": ({"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "batch_size": 1}}, None),
    "ood_subset_zero.toml": ({"stitching": ONE_PAIR, "layers": ONE_LAYER, "ood": {**OOD, "train_subset": 0}}, None),
    # ranges and enabled sections that would run nothing
    "stitch_subset_zero.toml": (
        {"stitching": {**ONE_PAIR, "methods": ["tlm"], "epochs": 1, "train_subset": 0}, "layers": ONE_LAYER},
        None,
    ),
    "stitch_eval_negative.toml": ({"stitching": {**ONE_PAIR, "eval_samples": -5}, "layers": ONE_LAYER}, None),
    "probe_subset_zero.toml": (
        {"probes": {"enabled": True, "layers": ["layer4.1"], "epochs": 1, "train_subset": 0}},
        None,
    ),
    "similarity_no_measures.toml": ({"similarity": {"enabled": True, "measures": [], "n_samples": 32}}, None),
    "sensitivity_no_measures.toml": ({"sensitivity": {"enabled": True, "measures": []}}, None),
    "specificity_no_measures.toml": ({"specificity": {"enabled": True, "measures": []}}, None),
    "device_unknown.toml": ({"study": {"device": "gpu0"}}, None),
    "device_missing_gpu.toml": ({"study": {"device": "cuda:99"}}, None),
}

#: the networks to train (no checkpoints): the training options' ranges
TRAIN_CONFIGS: dict[str, dict] = {
    "seed_overflow.toml": {"seeds": [0, 2**64]},
    "momentum_negative.toml": {"optimizer": "sgd", "momentum": -0.9},
    "milestone_zero.toml": {"milestones": [0, 1]},
    "train_subset_zero.toml": {"train_subset": 0},
}


def build(world: Path) -> None:
    """Adds the inputs these cases refer to under ``world``: checkpoints of other architectures
    (a small CNN, two tiny ViTs) and of a narrower ResNet-18, and one config per case."""
    _save(world, "cnn0", "small_cnn", 10, width=4)
    _save(world, "narrow0", "resnet18", 11, width=2)
    for i in range(2):
        _save(world, f"vit{i}", "vit_tiny_patch4_32", 20 + i, embed_dim=16, depth=2, num_heads=2)
    (world / FOLDER).mkdir()
    for name, (changes, checkpoints) in CONFIGS.items():
        _write(world / FOLDER / name, _base(world, checkpoints or ("ck0", "ck1")), changes)
    for name, networks in TRAIN_CONFIGS.items():
        trained = {"options": {"width": 4}, "seeds": [0, 1], "epochs": 1, "train_subset": 64}
        _write(world / FOLDER / name, {**_base(world, ()), "networks": trained}, {"networks": networks})


def _case(klass: str, config: str, needle: str) -> Case:
    return Case(f"study/{klass}", STUDY % config, needle)


CLI_CASES: list[Case] = [
    # the five of the issue: found only when their unit ran, after the networks were done
    _case("checks", "t2t_conv.toml", "stitching.type = 't2t' cannot stitch"),
    _case("checks", "all_two_architectures.toml", "layers.end = \"all\" uses layer 'layer1.0'"),
    _case("checks", "stitch_eval_zero.toml", "stitching.eval_samples must be ≥ 1"),
    _case("checks", "detector_typo.toml", "ood.detector has 'repr_cls_resnet81'"),
    _case("checks", "outliers_typo.toml", "ood.outliers: unknown dataset 'natural_patches_grey'"),
    _case("honest", "no_methods.toml", "stitching.methods is empty"),
    # stitching types
    _case("checks", "c2c_sizes_differ.toml", "the spatial sizes differ"),
    _case("checks", "c2c_all_layers.toml", "stitching.type = 'c2c' cannot stitch"),
    _case("checks", "rc2c_post_dm.toml", "direct matching cannot fit 'rc2c_post'"),
    _case("checks", "rc2c_post_tlm_from_dm.toml", "direct matching cannot fit 'rc2c_post'"),
    _case("checks", "c2t_conv.toml", "stitching.type = 'c2t' cannot stitch"),
    _case("checks", "v2v_conv.toml", "stitching.type = 'v2v' cannot stitch"),
    _case("checks", "t2c_from_conv.toml", "stitching.type = 't2c' cannot stitch"),
    _case("checks", "c2c_vit_tokens.toml", "stitching layer 'c2c' cannot map source shape (50, 16)"),
    # layers of networks of different architectures
    _case("checks", "end_layer_other_arch.toml", "layers.end = [\"layer4.1\"] uses layer 'layer4.1'"),
    _case("checks", "self_pairs_two_architectures.toml", "layers.front = \"all\" uses layer 'relu1'"),
    _case("checks", "similarity_two_architectures.toml", "[similarity] (every layer of networks[0]) uses layer"),
    _case("checks", "probes_two_architectures.toml", "probes.layers = [\"relu1\"] uses layer 'relu1'"),
    _case("checks", "sensitivity_two_architectures.toml", "sensitivity.layer = \"relu3\" uses layer 'relu3'"),
    _case(
        "checks",
        "specificity_two_architectures.toml",
        "specificity.reference_layer (the middle layer of networks[0]) uses layer 'layer3.0'",
    ),
    _case(
        "checks",
        "sensitivity_rank_narrow_network.toml",
        "sensitivity.ranks (network narrow0) 12 is above the 8 channels",
    ),
    _case("checks", "front_layers_empty.toml", "layers.front is empty"),
    _case("checks", "probe_layers_empty.toml", "probes.layers is empty"),
    # the OOD section
    _case("checks", "sanity_typo.toml", "ood.sanity: unknown dataset 'digit'"),
    _case("checks", "finetune_id_typo.toml", "ood.finetune_id: unknown dataset 'cifar5mil'"),
    _case("checks", "finetune_id_classes.toml", "ood.finetune_id 'cifar100' has 100 classes"),
    _case("checks", "detector_not_an_architecture.toml", "ood.detector has 'repr_cls'"),
    _case(
        "checks",
        "detector_option_unknown.toml",
        "ood.detector_options: model 'repr_cls_resnet18' has no option 'widht'",
    ),
    _case("checks", "detector_width_zero.toml", "ood.detector_options"),
    _case("checks", "token_detector_on_conv.toml", "repr_cls_vit_tiny takes (T, D) token sequences"),
    _case("checks", "conv_detector_on_vit.toml", "repr_cls_resnet18 takes (C, H, W) activations"),
    _case("honest", "ood_no_detectors.toml", "no detector would test anything"),
    _case("checks", "ood_eval_zero.toml", "ood.eval_samples must be ≥ 1"),
    _case("checks", "ood_batch_one.toml", "ood.batch_size must be ≥ 2"),
    _case("checks", "ood_subset_zero.toml", "ood.train_subset must be ≥ 1"),
    # ranges; enabled sections with nothing to run
    _case("checks", "stitch_subset_zero.toml", "stitching.train_subset must be ≥ 1"),
    _case("checks", "stitch_eval_negative.toml", "stitching.eval_samples must be ≥ 1"),
    _case("checks", "probe_subset_zero.toml", "probes.train_subset must be ≥ 1"),
    _case("honest", "similarity_no_measures.toml", "similarity.measures is empty"),
    _case("honest", "sensitivity_no_measures.toml", "sensitivity.measures is empty"),
    _case("honest", "specificity_no_measures.toml", "specificity.measures is empty"),
    _case("checks", "device_unknown.toml", "study.device: unknown device 'gpu0'"),
    _case("checks", "device_missing_gpu.toml", "study.device:"),
    _case("checks", "seed_overflow.toml", "networks.seeds must be in"),
    _case("checks", "momentum_negative.toml", "networks.momentum must be in [0, 1)"),
    _case("checks", "milestone_zero.toml", "networks.milestones must be positive integers"),
    _case("checks", "train_subset_zero.toml", "networks.train_subset must be ≥ 1"),
]
API_CASES: list[ApiCase] = []
