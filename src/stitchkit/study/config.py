"""The study configuration: one TOML (or YAML) file describes a whole comparison.

The schema is declared once (section → key → type, default, allowed values, help): the sections every
study has below, and each configurable unit kind's own section in its module of
:mod:`stitchkit.study.unit_kinds` (``SECTION``, named by ``config_section=`` in its declaration);
:data:`SCHEMA` puts them together. Validation errors name the section, the key and what is allowed.
``examples/demo.toml`` is a commented example.
"""

from __future__ import annotations

import copy
import json
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..choices import (
    ALL_LAYERS,
    DATA_PATHS,
    LAYER_REQUESTS,
    OPTIMIZERS,
    SCHEDULE_UNITS,
    SCHEDULERS,
)
from ..declarations import DeclarationError, LiveNames, catalogue, implementation
from ..errors import StitchkitError
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


def positive(v: Any) -> bool:
    return v > 0


def non_negative(v: Any) -> bool:
    return v >= 0


def unit_fraction(v: Any) -> bool:
    return 0 < v <= 1


def probability(v: Any) -> bool:
    return 0 <= v <= 1


def below_one(v: Any) -> bool:
    return 0 <= v < 1


def count_or_none(v: Any) -> bool:
    return v is None or v >= 1


#: a sample count or subset size that may be left out (None: all)
COUNT = {"check": count_or_none, "check_text": 'must be ≥ 1 (or "none" for all)'}


PAIRINGS = ("reference", "first", "all", "self", "reference_and_self", "first_and_self")
#: the stitch command's types (the declared stitching-layer types), ``auto`` first; read when the schema is used
STITCH_TYPES = LiveNames("stitching_layer", first=("auto",))


def schedule_keys(what: str, none: str) -> dict[str, Key]:
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
            check=below_one,
            check_text="must be in [0, 1)",
        ),
    }


#: the sections every study has, listed first (the unit kinds' own sections follow, :class:`Schema`)
LEADING_SECTIONS: dict[str, dict[str, Key]] = {
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
        "workers": Key(int, 0, "data loader workers inside a unit", check=non_negative, check_text="must be ≥ 0"),
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
            "model and seed); names only label: renaming recomputes nothing",
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
        "epochs": Key(int, 3, "training epochs", check=positive, check_text="must be ≥ 1"),
        "batch_size": Key(int, 128, "training batch size", check=positive, check_text="must be ≥ 1"),
        "lr": Key((int, float), 2e-3, "learning rate", check=positive, check_text="must be > 0"),
        "optimizer": Key(str, "adam", "optimizer", choices=OPTIMIZERS),
        "weight_decay": Key((int, float), 1e-5, "weight decay", check=non_negative, check_text="must be ≥ 0"),
        "momentum": Key((int, float), 0.0, "SGD momentum", check=below_one, check_text="must be in [0, 1)"),
        **schedule_keys("the networks' training", "constant, or ×0.1 at the milestones when given"),
        "milestones": Key(list, [], "multistep LR milestones (epochs)"),
        "augment": Key(
            bool,
            True,
            "use the dataset's training augmentation (recorded in the checkpoint; what trains through the network "
            "follows it by default: stitching.augment, ood.augment, probes.augment)",
        ),
        "train_subset": Key((int, type(None)), None, "train on a fixed random subset of this many images", **COUNT),
    },
    "layers": {
        "front": Key((str, list), ALL_LAYERS, f"front (source) layers: {LAYER_REQUESTS}"),
        "end": Key((str, list), ALL_LAYERS, f"end (target) layers: {LAYER_REQUESTS}"),
    },
}

#: the sections every study has, listed last
TRAILING_SECTIONS: dict[str, dict[str, Key]] = {
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
            check=non_negative,
            check_text="must be ≥ 0",
        ),
        "similarity_bootstrap": Key(
            int,
            50,
            "bootstrap resamples of the similarity indices (0: none): each resample refits the index "
            "(an SVD per resample and layer pair for PWCCA and Procrustes), hence fewer than `bootstrap` by default; "
            "the similarity units run again when it changes",
            check=non_negative,
            check_text="must be ≥ 0",
        ),
        "permutations": Key(
            int,
            50,
            "permutations of the sample correspondence giving each similarity index's null distribution and "
            "p-value (0: none; the smallest p-value is 1/(permutations + 1))",
            check=non_negative,
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
            check=non_negative,
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
            check=unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "high": Key(
            (int, float),
            0.90,
            '"rated highly similar" by a stitching method = at least this fraction of the end network\'s accuracy '
            "(the same relative criterion)",
            check=unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "most": Key(
            (int, float),
            0.75,
            '"on the corresponding layers" / "for most layers" = at least this fraction of the layers (allows the '
            "first block or two to fail, as the paper's own figures show for the earliest layers)",
            check=unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "often": Key(
            (int, float),
            0.5,
            '"often" = at least this fraction of the cases',
            check=unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "near": Key(
            int,
            1,
            '"near the corresponding layer" = at most this many layer indices away',
            check=non_negative,
            check_text="must be ≥ 0",
        ),
        "tie": Key(
            (int, float),
            0.005,
            "two relative accuracies within this (absolute difference) are a tie, counted in favour of the "
            "corresponding layer",
            check=non_negative,
            check_text="must be ≥ 0",
        ),
        "far": Key(
            (int, float),
            0.5,
            '"distant late → early pairs" = front index − end index ≥ ceil(far · n) for n layers',
            check=unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "ood_auroc": Key(
            (int, float),
            0.75,
            '"flagged OOD" = detector AUROC ≥ this (clearly separable, far above 0.5)',
            check=probability,
            check_text="must be in [0, 1]",
        ),
        "id_auroc": Key(
            (int, float),
            0.65,
            '"in-distribution" = detector AUROC ≤ this (close to chance); between id_auroc and ood_auroc is neither',
            check=probability,
            check_text="must be in [0, 1]",
        ),
        "detector_sanity": Key(
            (int, float),
            0.90,
            "a layer's detector is used only if its sanity-check AUROC (genuine test activations vs the sanity set) "
            "is at least this",
            check=probability,
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
            "the noise of a rank correlation)",
            check=non_negative,
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
            check=below_one,
            check_text="must be in [0, 1)",
        ),
        "pair_support": Key(
            (int, float),
            0.5,
            "with several network pairs (or self-pairs for C4) a claim is supported when it holds for MORE than "
            "this fraction of the pairs on which it is testable (0.5: a strict majority), not supported otherwise; "
            "the verdict "
            'says "holds for k of n pairs" with each pair\'s numbers. One pair decides alone',
            check=below_one,
            check_text="must be in [0, 1)",
        ),
    },
}


def kind_sections() -> dict[str, dict[str, Key]]:
    """The sections the unit kinds declare: a kind whose declaration names ``config_section=`` defines the
    section's keys as ``SECTION`` in its module (a ``dict`` of :class:`Key`); listed in the kinds' order
    (``config_order``, default ``order``)."""
    declared = [d for d in catalogue("unit_kind").values() if "config_section" in d.meta]
    out: dict[str, dict[str, Key]] = {}
    for decl in sorted(declared, key=lambda d: d.get("config_order", d.order)):
        name = decl.meta["config_section"]
        if name in LEADING_SECTIONS or name in TRAILING_SECTIONS or name in out:
            raise DeclarationError(
                f"unit kind {decl.name!r} ({decl.source}) declares the study config section "
                f"[{name}], which the study already has"
            )
        implementation("unit_kind", decl.name)  # imports its module
        section = getattr(sys.modules[decl.module], "SECTION", None)
        if not isinstance(section, dict) or not all(isinstance(k, Key) for k in section.values()):
            raise DeclarationError(
                f"unit kind {decl.name!r} ({decl.source}) declares config_section={name!r} "
                f"but its module {decl.module} has no SECTION dict of study.config.Key"
            )
        out[name] = section
    return out


class Schema(Mapping[str, dict[str, Key]]):
    """The study config's schema, section → key → :class:`Key`: the shared :data:`LEADING_SECTIONS`, the
    unit kinds' own sections (:func:`kind_sections`), then the shared :data:`TRAILING_SECTIONS`. Read anew
    when used, so a unit kind declared at run time (a notebook's or a test's) brings its section."""

    def sections(self) -> dict[str, dict[str, Key]]:
        return {**LEADING_SECTIONS, **kind_sections(), **TRAILING_SECTIONS}

    def __getitem__(self, section: str) -> dict[str, Key]:
        return self.sections()[section]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sections())

    def __len__(self) -> int:
        return len(self.sections())

    def __repr__(self) -> str:
        return f"Schema({list(self)})"


SCHEMA = Schema()


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
