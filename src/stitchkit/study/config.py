"""The study configuration: one TOML (or YAML) file describes a whole comparison.

The schema is declared once below (section → key → type, default, allowed values, help); validation
errors name the section, the key and what is allowed. ``examples/demo.toml`` is a commented example.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..choices import (
    ALL_LAYERS,
    AUGMENTATIONS,
    DATA_PATHS,
    DEFAULT_AUGMENTATION,
    DEFAULT_POLICY,
    LAYER_REQUESTS,
    OPTIMIZERS,
    POLICIES,
    SCHEDULE_UNITS,
    SCHEDULERS,
)
from ..declarations import LiveNames
from ..errors import StitchkitError
from ..stitch_methods import DEFAULT_DM_SOLVER, DM_SOLVERS, METHODS, METHODS_HELP
from ..uncertainty.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from .config_checks import SEED_RANGE, cross_checks, seed_in_range


@dataclass(frozen=True)
class Key:
    type: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None  # allowed values (for lists: allowed elements)
    check: Callable[[Any], bool] | None = None
    check_text: str = ""


def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


def _unit_fraction(v: Any) -> bool:
    return 0 < v <= 1


def _probability(v: Any) -> bool:
    return 0 <= v <= 1


def _below_one(v: Any) -> bool:
    return 0 <= v < 1


def _count_or_none(v: Any) -> bool:
    return v is None or v >= 1


#: a sample count or subset size that may be left out (None: all)
_COUNT = {"check": _count_or_none, "check_text": 'must be ≥ 1 (or "none" for all)'}


PAIRINGS = ("reference", "first", "all", "self", "reference_and_self", "first_and_self")
#: the stitch command's types (the declared stitching-layer types), ``auto`` first; read when the schema is used
STITCH_TYPES = LiveNames("stitching_layer", first=("auto",))


def _schedule_keys(what: str, none: str) -> dict[str, Key]:
    """The :data:`SCHEDULE_KEYS` of a section, for the training of ``what`` (``none``: what the default does)."""
    return {
        "scheduler": Key(
            str,
            "none",
            f"LR schedule of {what} (none: {none}; see `stitchkit train --help`); onecycle needs "
            'schedule_unit = "step" and a warmup_fraction',
            choices=tuple(SCHEDULERS),
        ),
        "schedule_unit": Key(
            str,
            "epoch",
            "when that schedule advances: epoch (the original's) or step (after every optimizer step)",
            choices=tuple(SCHEDULE_UNITS),
        ),
        "warmup_fraction": Key(
            (int, float),
            0.0,
            'with schedule_unit = "step": warm up over the first round(fraction·T) of the '
            "T = epochs × batches optimizer steps",
            check=_below_one,
            check_text="must be in [0, 1)",
        ),
    }


SCHEMA: dict[str, dict[str, Key]] = {
    "study": {
        "name": Key(str, "study", "a name for the study (used in the report)"),
        "dataset": Key(
            str,
            "fashion",
            "dataset of every network and method; also your own data: folder:PATH or npz:PATH (optionally @HxW)",
        ),
        "data_root": Key((str, type(None)), None, "data root (default $STITCHKIT_DATA or ./data)"),
        "device": Key(str, "auto", "auto, cpu, cuda, cuda:N"),
        "seed": Key(
            int,
            0,
            "seed of everything that is not a network seed",
            check=seed_in_range,
            check_text=f"must be in {SEED_RANGE}",
        ),
        "workers": Key(int, 0, "data loader workers inside a unit", check=_non_negative, check_text="must be ≥ 0"),
        "data_path": Key(
            str,
            "auto",
            "how batches are made: auto, device (images kept on the device, augmented there in batches) or loader "
            "(a DataLoader); the same batches either way",
            choices=DATA_PATHS,
        ),
        "group_size": Key(
            (int, type(None)),
            None,
            "stitches per end-suffix pass of a grouped grid (default: what the memory holds)",
            check=lambda v: v is None or v >= 1,
            check_text="must be ≥ 1",
        ),
    },
    "networks": {
        "model": Key(str, "resnet18", "architecture to train (ignored when checkpoints are given)"),
        "options": Key(dict, {}, "architecture options, e.g. { width = 8 }"),
        "seeds": Key(list, [0, 1, 2], "one network is trained per seed"),
        "checkpoints": Key(list, [], "use these checkpoints instead of training (paths)"),
        "names": Key(
            list,
            [],
            "the networks' names in labels, figures and file names, one per network (per seed, or per checkpoint) in "
            "order; letters, digits and . _ + = - (default: the checkpoints' run folders, e.g. fm_r18_s0, or the "
            "model and seed); "
            "names only label: renaming recomputes nothing",
        ),
        "allow_other_dataset": Key(
            bool,
            False,
            "use checkpoints that record a dataset other than study.dataset (refused by default: their "
            "results would describe them on data they were not trained on; recorded with each result when allowed)",
        ),
        "weights": Key(
            (str, type(None)),
            None,
            "local pretrained weights (a state_dict file) a torchvision:/timm: model starts from, "
            "instead of a download (the same as options.weights; paths relative to the working folder)",
        ),
        "epochs": Key(int, 3, "training epochs", check=_positive, check_text="must be ≥ 1"),
        "batch_size": Key(int, 128, "training batch size", check=_positive, check_text="must be ≥ 1"),
        "lr": Key((int, float), 2e-3, "learning rate", check=_positive, check_text="must be > 0"),
        "optimizer": Key(str, "adam", "optimizer", choices=OPTIMIZERS),
        "weight_decay": Key((int, float), 1e-5, "weight decay", check=_non_negative, check_text="must be ≥ 0"),
        "momentum": Key((int, float), 0.0, "SGD momentum", check=_below_one, check_text="must be in [0, 1)"),
        **_schedule_keys("the networks' training", "constant, or ×0.1 at the milestones when given"),
        "milestones": Key(list, [], "multistep LR milestones (epochs)"),
        "augment": Key(
            bool,
            True,
            "use the dataset's training augmentation (recorded in the checkpoint; what trains through the network "
            "follows it by default: stitching.augment, ood.augment, probes.augment)",
        ),
        "train_subset": Key((int, type(None)), None, "train on a fixed random subset of this many images", **_COUNT),
    },
    "layers": {
        "front": Key((str, list), ALL_LAYERS, f"front (source) layers: {LAYER_REQUESTS}"),
        "end": Key((str, list), ALL_LAYERS, f"end (target) layers: {LAYER_REQUESTS}"),
    },
    "stitching": {
        "enabled": Key(bool, True, "run stitching grids"),
        "methods": Key(list, ["dm", "tlm"], METHODS_HELP, choices=METHODS),
        "pairs": Key(
            str,
            "reference",
            "network pairs: reference (first → each other), first (first → second only), all (ordered pairs), self, "
            "reference_and_self, first_and_self (first → itself and → second)",
            choices=PAIRINGS,
        ),
        "type": Key(str, "auto", "stitching layer type", choices=STITCH_TYPES),
        "fit_samples": Key(
            int, 100, "K, training images of the direct-matching fit", check=_positive, check_text="must be ≥ 1"
        ),
        "epochs": Key(int, 30, "TLM epochs", check=_positive, check_text="must be ≥ 1"),
        "batch_size": Key(int, 256, "TLM batch size", check=_positive, check_text="must be ≥ 1"),
        "lr": Key((int, float), 1e-3, "TLM learning rate", check=_positive, check_text="must be > 0"),
        "weight_decay": Key((int, float), 1e-5, "TLM weight decay", check=_non_negative, check_text="must be ≥ 0"),
        "train_subset": Key(
            (int, type(None)), None, "TLM trains on a fixed random subset of this many images", **_COUNT
        ),
        **_schedule_keys("TLM", "constant"),
        "eval_samples": Key((int, type(None)), None, "evaluate on the first N test images (default all)", **_COUNT),
        "amp": Key(
            bool,
            False,
            "bf16 autocast of donors and stitching layers during TLM training on CUDA (changes the numbers slightly; "
            "recorded)",
        ),
        "dm_solver": Key(
            str,
            DEFAULT_DM_SOLVER,
            "direct-matching solve of dm and tlm_from_dm: stitchkit (float64 least "
            "squares) or original (its float32 pinv with torch's default cutoff on the fit images in one batch)",
            choices=DM_SOLVERS,
        ),
        "augment": Key(
            str,
            DEFAULT_AUGMENTATION,
            "augmentation of the images TLM and TLM from DM train on (also the tests' tlm_accuracy): "
            "network = as the end network was trained (its checkpoint's record, networks.augment for trained ones; "
            "the dataset's "
            "default when it records nothing), dataset = the dataset's default, none",
            choices=tuple(AUGMENTATIONS),
        ),
    },
    "similarity": {
        "enabled": Key(bool, True, "compute similarity index matrices"),
        "measures": Key(
            list, ["cka", "pwcca", "procrustes"], "similarity measures (see stitchkit.similarity.list_measures)"
        ),
        "n_samples": Key(int, 1000, "test images the indices use", check=_positive, check_text="must be ≥ 1"),
        "policy": Key(
            str,
            DEFAULT_POLICY,
            "how activations become data matrices (also for the sensitivity and specificity tests), the same for "
            "every cell of a matrix; auto_original mixes positions and pooling by shape, as the original did (its "
            "matrices are marked)",
            choices=POLICIES,
        ),
        "pairs": Key(str, "reference", "network pairs, as for stitching", choices=PAIRINGS),
    },
    "ood": {
        "enabled": Key(bool, True, "test stitched representations with OOD detectors"),
        "energy": Key(
            bool, True, "train energy detectors (representation classifiers fine-tuned with outlier exposure)"
        ),
        "self_pairs": Key(
            bool,
            True,
            "also test the stitches of a network into itself (false: only stitches between two networks, "
            "which are what the findings' OOD claim uses; saves the detectors of networks that are only self-stitched)",
        ),
        "training_free": Key(
            list, ["mahalanobis", "knn"], "training-free detectors", choices=LiveNames("detector", trains=False)
        ),
        "detector": Key(str, "repr_cls_resnet18", "energy detector architecture"),
        "detector_options": Key(dict, {"width": 8}, "detector architecture options"),
        "outliers": Key(str, "natural_patches_gray", "auxiliary outlier set for fine-tuning"),
        "finetune_id": Key(
            (str, type(None)),
            None,
            "in-distribution set of the fine-tuning (the paper: cifar5m; default the study's dataset)",
        ),
        "sanity": Key((str, type(None)), "digits", "sanity-check OOD set per layer (None to skip)"),
        "pretrain_epochs": Key(int, 1, "detector pre-training epochs", check=_positive, check_text="must be ≥ 1"),
        "finetune_epochs": Key(int, 1, "energy fine-tuning epochs", check=_positive, check_text="must be ≥ 1"),
        "batch_size": Key(
            int,
            128,
            "detector batch size (fine-tuning batches are half in-distribution, half outliers)",
            check=lambda v: v >= 2,
            check_text="must be ≥ 2",
        ),
        "train_subset": Key(
            (int, type(None)), None, "detectors train on a fixed random subset of this many images", **_COUNT
        ),
        **_schedule_keys("both detector phases", "×0.1 after half the fine-tuning epochs"),
        "eval_samples": Key(
            (int, type(None)), None, "OOD evaluation on the first N test images (default all)", **_COUNT
        ),
        "augment": Key(
            str,
            DEFAULT_AUGMENTATION,
            "augmentation of the images the detectors' pre-training and the ID half of their "
            "fine-tuning feed through the end network (the outliers keep their set's): network, dataset or none, as "
            "stitching.augment",
            choices=tuple(AUGMENTATIONS),
        ),
    },
    "probes": {
        "enabled": Key(bool, True, "train linear probes"),
        "layers": Key((str, list), ALL_LAYERS, f"probed layers: {LAYER_REQUESTS}"),
        "ranks": Key(list, [], "low ranks of the representation to probe besides full rank"),
        "epochs": Key(int, 10, "probe epochs", check=_positive, check_text="must be ≥ 1"),
        "train_subset": Key(
            (int, type(None)), None, "probes train on a fixed random subset of this many images", **_COUNT
        ),
        **_schedule_keys(
            "the probes, also those of the sensitivity and specificity tests", "×0.1 after epoch e − 5 when e > 5"
        ),
        "augment": Key(
            str,
            DEFAULT_AUGMENTATION,
            "augmentation of the probes' training images, also the sensitivity and specificity "
            "tests' probes: network (as the probed network was trained), dataset or none (features extracted once: "
            "much faster)",
            choices=tuple(AUGMENTATIONS),
        ),
    },
    "sensitivity": {
        "enabled": Key(bool, True, "run the sensitivity test (Ding et al.)"),
        "layer": Key((str, type(None)), None, "layer tested (default: the middle stitchable layer)"),
        "ranks": Key(list, [], "decreasing ranks of the candidates (default: derived from the layer width)"),
        "measures": Key(list, ["cka", "pwcca", "procrustes", "dm_residual"], "measures tested"),
    },
    "specificity": {
        "enabled": Key(bool, True, "run the specificity test"),
        "reference_layer": Key((str, type(None)), None, "reference layer (default: the middle stitchable layer)"),
        "measures": Key(list, ["cka", "pwcca", "procrustes", "dm_residual"], "measures tested"),
    },
    # How sure each number is (issue 19). Intervals of the stitch, OOD and probe matrices and the verdicts'
    # robustness are computed at report time from the per-sample statistics the units always store, so
    # these keys are not part of those units' identities (switching them on re-runs none of them); the
    # similarity units compute their intervals and nulls themselves, so there they are (only when non-zero).
    # The sensitivity and specificity tests keep their indices' values on the first min(verdict_resamples,
    # similarity_bootstrap) verdict resamples (seed), passed through the unit context (not their identity), for
    # C6's robustness.
    "uncertainty": {
        "bootstrap": Key(
            int,
            DEFAULT_RESAMPLES,
            "bootstrap resamples of the test images behind each interval (0: no intervals); percentile "
            "intervals, the same resampled images for every cell of a grid and every unit on the same images",
            check=_non_negative,
            check_text="must be ≥ 0",
        ),
        "similarity_bootstrap": Key(
            int,
            50,
            "bootstrap resamples of the similarity indices (0: none): each resample refits the index "
            "(an SVD per resample and layer pair for PWCCA and Procrustes), hence fewer than `bootstrap` by default; "
            "the similarity units run again when it changes",
            check=_non_negative,
            check_text="must be ≥ 0",
        ),
        "permutations": Key(
            int,
            50,
            "permutations of the sample correspondence giving each similarity index's null distribution and "
            "p-value (0: none; the smallest p-value is 1/(permutations + 1))",
            check=_non_negative,
            check_text="must be ≥ 0",
        ),
        "level": Key(
            float,
            DEFAULT_LEVEL,
            "confidence level of the intervals",
            check=lambda v: 0 < v < 1,
            check_text="must be in (0, 1)",
        ),
        "seed": Key(
            int,
            0,
            "seed of the resamples and permutations (recorded with every interval)",
            check=seed_in_range,
            check_text=f"must be in {SEED_RANGE}",
        ),
        "verdict_resamples": Key(
            int,
            200,
            "bootstrap resamples on which each finding's verdict is recomputed to say how often it comes out "
            "the same (0: not measured); a verdict holding in fewer than 90% of them is marked fragile",
            check=_non_negative,
            check_text="must be ≥ 0",
        ),
    },
    # The thresholds of the report's findings (see stitchkit.study.findings). They are read from the stored
    # results only: no unit depends on them, so changing them recomputes nothing but the findings. Each help
    # text is the rationale the report prints beside the value.
    "findings": {
        "match": Key(
            (int, float),
            0.90,
            "\"reproduces the end network's accuracy\" = at least this fraction of the end network's own accuracy "
            "(relative, so that it means the same for an 85% and a 95% network)",
            check=_unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "high": Key(
            (int, float),
            0.90,
            '"rated highly similar" by a stitching method = at least this fraction of the end network\'s accuracy '
            "(the same relative criterion)",
            check=_unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "most": Key(
            (int, float),
            0.75,
            '"on the corresponding layers" / "for most layers" = at least this fraction of the layers (allows the '
            "first block or two to fail, as the paper's own figures show for the earliest layers)",
            check=_unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "often": Key(
            (int, float),
            0.5,
            '"often" = at least this fraction of the cases',
            check=_unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "near": Key(
            int,
            1,
            '"near the corresponding layer" = at most this many layer indices away',
            check=_non_negative,
            check_text="must be ≥ 0",
        ),
        "tie": Key(
            (int, float),
            0.005,
            "two relative accuracies within this (absolute difference) are a tie, counted in favour of the "
            "corresponding layer",
            check=_non_negative,
            check_text="must be ≥ 0",
        ),
        "far": Key(
            (int, float),
            0.5,
            '"distant late → early pairs" = front index − end index ≥ ceil(far · n) for n layers',
            check=_unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "ood_auroc": Key(
            (int, float),
            0.75,
            '"flagged OOD" = detector AUROC ≥ this (clearly separable, far above 0.5)',
            check=_probability,
            check_text="must be in [0, 1]",
        ),
        "id_auroc": Key(
            (int, float),
            0.65,
            '"in-distribution" = detector AUROC ≤ this (close to chance); between id_auroc and ood_auroc is neither',
            check=_probability,
            check_text="must be in [0, 1]",
        ),
        "detector_sanity": Key(
            (int, float),
            0.90,
            "a layer's detector is used only if its sanity-check AUROC (genuine test activations vs the sanity set) "
            "is at least this",
            check=_probability,
            check_text="must be in [0, 1]",
        ),
        "alpha": Key(
            (int, float),
            0.05,
            "significance level of the one-sided rank correlations of the sensitivity and specificity tests",
            check=lambda v: 0 < v < 1,
            check_text="must be in (0, 1)",
        ),
        "rho_tolerance": Key(
            (int, float),
            0.05,
            'C6: direct matching tracks functional differences "at least as well as" the indices when, in '
            "each test, its Spearman ρ is not below the HIGHEST index ρ by more than this (a smaller gap is within "
            "the noise of a "
            "rank correlation)",
            check=_non_negative,
            check_text="must be ≥ 0",
        ),
        "detector_support": Key(
            (int, float),
            0.5,
            "C5's overall verdict: supported when MORE than this fraction of the detectors that can test the "
            "claim support it, not supported otherwise (0.5: a strict majority; a tie does not support). A detector "
            "can test it when it passes its sanity check (AUROC ≥ detector_sanity) on some end layer of both OOD "
            "tests and those layers have accurate TLM and matching DM stitches; each such detector's own verdict is "
            "reported beside the overall one",
            check=_below_one,
            check_text="must be in [0, 1)",
        ),
        "pair_support": Key(
            (int, float),
            0.5,
            "with several network pairs (or self-pairs for C4) a claim is supported when it holds for MORE than "
            "this fraction of the pairs on which it is testable (0.5: a strict majority), not supported otherwise; "
            "the verdict "
            'says "holds for k of n pairs" with each pair\'s numbers. One pair decides alone',
            check=_below_one,
            check_text="must be in [0, 1)",
        ),
    },
}


def _type_name(t: type | tuple[type, ...]) -> str:
    types = t if isinstance(t, tuple) else (t,)
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true/false",
        list: "a list",
        dict: "a table",
        type(None): "null",
    }
    return " or ".join(names.get(x, x.__name__) for x in types)


def validate_section(section: str, given: Any, source: str = "study config") -> dict[str, Any]:
    """One section with its defaults filled in and every key checked."""
    keys = SCHEMA[section]
    if not isinstance(given, dict):
        raise StitchkitError(f"{source}: [{section}] must be a table")
    bad = [k for k in given if k not in keys]
    if bad:
        raise StitchkitError(f"{source}: unknown key {section}.{bad[0]}; keys of [{section}]: {', '.join(keys)}")
    out = {}
    for key, spec in keys.items():
        value = given.get(key, copy.deepcopy(spec.default))
        where = f"{section}.{key}"
        types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
        if type(None) in types and isinstance(value, str) and value.lower() in ("", "none"):
            value = None  # TOML has no null: "" or "none" stands for it
        if isinstance(value, bool) and bool not in types:
            raise StitchkitError(f"{source}: {where} must be {_type_name(spec.type)}, got {value!r}")
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            pass
        elif not isinstance(value, types):
            raise StitchkitError(f"{source}: {where} must be {_type_name(spec.type)}, got {value!r}")
        if spec.choices is not None:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if item not in spec.choices:
                    raise StitchkitError(
                        f"{source}: {where} has {item!r}; allowed: {', '.join(map(str, spec.choices))}"
                    )
        if spec.check is not None and value is not None and not spec.check(value):
            raise StitchkitError(f"{source}: {where} {spec.check_text}, got {value!r}")
        out[key] = value
    if section in SECTION_CHECKS:
        SECTION_CHECKS[section](out, source)
    return out


def _check_findings(values: dict[str, Any], source: str) -> None:
    if values["id_auroc"] > values["ood_auroc"]:
        raise StitchkitError(
            f"{source}: findings.id_auroc ({values['id_auroc']}) must not exceed findings.ood_auroc "
            f"({values['ood_auroc']}): "
            "an AUROC cannot be both in-distribution and flagged OOD"
        )


#: checks between the keys of one section (run whenever the section is validated, also on its own)
SECTION_CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {"findings": _check_findings}


def validate(raw: dict[str, Any], source: str = "study config") -> dict[str, dict[str, Any]]:
    """Fill defaults and check every key; returns the complete configuration."""
    if not isinstance(raw, dict):
        raise StitchkitError(f"{source} must be a table of sections ({', '.join(SCHEMA)})")
    unknown = [s for s in raw if s not in SCHEMA]
    if unknown:
        raise StitchkitError(f"{source}: unknown section [{unknown[0]}]; sections: {', '.join(SCHEMA)}")
    config = {section: validate_section(section, raw.get(section, {}), source) for section in SCHEMA}
    cross_checks(config, source)
    given = raw.get("networks") or {}
    if "seeds" not in given and "checkpoints" not in given:
        # the defaults alone would silently start the full default study
        raise StitchkitError(
            f"{source} names no networks: give a [networks] section with seeds (networks to train) or checkpoints "
            f"(networks you have). "
            f"The smallest valid config is: [networks] seeds = [0, 1]  — see examples/demo.toml, or `stitchkit study "
            f"--schema` for every key"
        )
    return config


def load_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and validate a study config (TOML; YAML when PyYAML is installed)."""
    path = Path(path)
    if path.is_dir():
        raise StitchkitError(f"study config {str(path)!r} is a folder; give the config file (e.g. examples/demo.toml)")
    if not path.is_file():
        raise StitchkitError(f"study config {str(path)!r} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise StitchkitError(f"study config {str(path)!r} cannot be read as text ({exc})") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]  # deferred: PyYAML loads only for .yaml configs
            except ImportError:
                raise StitchkitError(
                    "YAML study configs need PyYAML (pip install pyyaml); TOML needs nothing"
                ) from None
            raw = yaml.safe_load(text) or {}
        else:
            raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StitchkitError(f"study config {str(path)!r} is not valid TOML: {exc}") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml here
        if type(exc).__module__.startswith("yaml"):
            raise StitchkitError(f"study config {str(path)!r} is not valid YAML: {exc}") from None
        raise
    return validate(raw, source=f"study config {path.name}")


def toml_value(value: Any) -> str:
    """A config value as TOML: dicts as inline tables, lists as arrays (strings, numbers and booleans
    are written alike in JSON and TOML)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


#: the first line of :func:`describe_schema`
NULL_NOTE = (
    '# null = no value (YAML: null; TOML has no null: leave the key out, or write "none" or ""); '
    'a quoted "none" is the option\'s own value none'
)


def describe_schema() -> str:
    """The schema as commented TOML (for documentation and ``--help``); a default of None is shown as
    ``null`` (JSON's and YAML's; TOML has none, so such a key is left out there, or set to "none" or "")."""
    lines = [NULL_NOTE, ""]
    for section, keys in SCHEMA.items():
        lines.append(f"[{section}]")
        for key, spec in keys.items():
            default = toml_value(spec.default)  # None: null
            choices = f" (one of: {', '.join(map(str, spec.choices))})" if spec.choices else ""
            lines.append(f"# {key} = {default}  — {spec.help}{choices}")
        lines.append("")
    return "\n".join(lines)
