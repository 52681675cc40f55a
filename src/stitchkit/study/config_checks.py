"""The checks of a study config that read several keys or sections at once (run by
:func:`~.config.validate` after each section's keys are checked on their own): the networks' seeds and
checkpoints, the LR schedules as the training will check them, every measure and OOD name against its
registry, and that an enabled section has something to run. Checks that need the networks themselves
are :mod:`.checks`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..choices import SCHEDULE_KEYS
from ..declarations import names
from ..errors import StitchkitError
from ..stitch_methods import METHODS, either_of
from ..utils.numbers import SEED_LIMIT

#: the seeds stitchkit's generators take (:func:`stitchkit.utils.numbers.check_seed`)
SEED_RANGE = "[0, 2**64)"


def seed_in_range(v: Any) -> bool:
    return 0 <= v < SEED_LIMIT


def cross_checks(config: dict[str, dict[str, Any]], source: str) -> None:
    nets = config["networks"]
    if not nets["checkpoints"]:
        if not nets["seeds"] or not all(isinstance(s, int) and not isinstance(s, bool) for s in nets["seeds"]):
            raise StitchkitError(
                f"{source}: networks.seeds must be a non-empty list of integers, got {nets['seeds']!r}"
            )
        if len(set(nets["seeds"])) != len(nets["seeds"]):
            raise StitchkitError(f"{source}: networks.seeds has duplicates: {nets['seeds']!r}")
        if not all(seed_in_range(s) for s in nets["seeds"]):
            raise StitchkitError(f"{source}: networks.seeds must be in {SEED_RANGE}, got {nets['seeds']!r}")
    if not all(isinstance(p, str) for p in nets["checkpoints"]):
        raise StitchkitError(f"{source}: networks.checkpoints must be a list of paths")
    if nets["weights"] is not None:
        _fold_weights(nets, source)
    _check_names(nets, source)
    _check_schedules(config, source)
    for section, key in (("probes", "ranks"), ("sensitivity", "ranks"), ("networks", "milestones")):
        values = config[section][key]
        if not all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in values):
            raise StitchkitError(f"{source}: {section}.{key} must be positive integers, got {values!r}")
    known = set(names("measure"))  # the declared measures (read without importing them)
    for section in ("similarity", "sensitivity", "specificity"):
        for m in config[section]["measures"]:
            if m not in known:
                raise StitchkitError(f"{source}: {section}.measures has {m!r}; allowed: {', '.join(sorted(known))}")
    _check_enabled_sections(config, source)
    if config["ood"]["enabled"] and config["stitching"]["enabled"]:
        _check_ood_names(config["ood"], config["study"]["dataset"], source)


#: a network's name (``[networks] names``): it becomes part of unit labels, figure titles and file names, so
#: letters, digits and ``. _ + = -`` only (no spaces, slashes or the arrows → ↔ that join two names), not
#: starting with a dot
NETWORK_NAME = re.compile(r"[\w+=-][\w.+=-]*")


def _check_names(nets: dict[str, Any], source: str) -> None:
    """``networks.names``: one distinct, well-formed name per network (checkpoint, else seed), or none."""
    names = nets["names"]
    if not names:
        return
    what, count = ("checkpoints", len(nets["checkpoints"])) if nets["checkpoints"] else ("seeds", len(nets["seeds"]))
    if len(names) != count:
        raise StitchkitError(
            f"{source}: networks.names has {len(names)} name(s) for {count} network(s) (networks.{what}); give one "
            f"name per network"
        )
    for i, name in enumerate(names):
        if not isinstance(name, str) or not NETWORK_NAME.fullmatch(name):
            raise StitchkitError(
                f"{source}: networks.names[{i}] = {name!r} is not a usable name; use letters, digits and . _ + = - "
                '(no spaces, slashes or arrows; not starting with a dot), e.g. "fm_r18_s0"'
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise StitchkitError(
            f"{source}: networks.names gives {', '.join(map(repr, repeated))} more than once; each network needs its "
            f"own name"
        )


#: what each section runs when enabled: a list that must not be empty (an enabled section with nothing
#: to run would plan no units and still say "finished")
_MUST_NAME = {
    "stitching": ("methods", either_of(METHODS)),
    "similarity": ("measures", "e.g. cka"),
    "sensitivity": ("measures", "e.g. cka"),
    "specificity": ("measures", "e.g. cka"),
}


def _check_enabled_sections(config: dict[str, dict[str, Any]], source: str) -> None:
    """An enabled section names something to run; every layer list names a layer."""
    for section, (key, example) in _MUST_NAME.items():
        if config[section]["enabled"] and not config[section][key]:
            raise StitchkitError(
                f"{source}: [{section}] is enabled but {section}.{key} is empty; name at least one ({example}) "
                f"or set [{section}] enabled = false"
            )
    ood = config["ood"]
    if ood["enabled"] and config["stitching"]["enabled"] and not ood["energy"] and not ood["training_free"]:
        raise StitchkitError(
            f"{source}: [ood] is enabled with energy = false and ood.training_free empty, so no detector would test "
            "anything; set energy = true, name training-free detectors, or set [ood] enabled = false"
        )
    for section, key in (("layers", "front"), ("layers", "end"), ("probes", "layers")):
        value = config[section][key]
        if not (value.strip() if isinstance(value, str) else value):
            raise StitchkitError(f'{source}: {section}.{key} is empty; give "all" or a list of layer names')


def _check_ood_names(ood: dict[str, Any], dataset: str, source: str) -> None:
    """The OOD section's datasets and detector architecture, by the registries' names (the detectors'
    layer shapes are checked with the networks, :mod:`.checks`)."""
    from ..data import dataset_info  # deferred: importing the study package must not import torch
    from ..models.catalog import models

    keys = [("sanity", ood["sanity"])]
    if ood["energy"]:
        keys += [("outliers", ood["outliers"]), ("finetune_id", ood["finetune_id"])]
    for key, name in keys:
        if name is not None:
            try:
                dataset_info(name)
            except StitchkitError as exc:
                raise StitchkitError(f"{source}: ood.{key}: {exc}") from None
    if not ood["energy"]:
        return
    if (
        ood["finetune_id"] is not None
        and dataset_info(ood["finetune_id"]).num_classes != dataset_info(dataset).num_classes
    ):
        raise StitchkitError(
            f"{source}: ood.finetune_id {ood['finetune_id']!r} has {dataset_info(ood['finetune_id']).num_classes} "
            f"classes but "
            f"the study's dataset {dataset!r} has {dataset_info(dataset).num_classes}; the detectors classify the "
            f"study's "
            "classes, so use an ID set with the same classes (or none: the study's dataset)"
        )
    known = models()
    detectors = [name for name, info in known.items() if info.family.startswith("repr_cls")]
    if ood["detector"] not in known:
        raise StitchkitError(
            f"{source}: ood.detector has {ood['detector']!r}, which is not a registered architecture; the "
            f"representation classifiers: {', '.join(detectors)}"
        )
    try:
        known[ood["detector"]].resolve_options(ood["detector_options"])
    except StitchkitError as exc:
        raise StitchkitError(f"{source}: ood.detector_options: {exc}") from None


def _check_schedules(config: dict[str, dict[str, Any]], source: str) -> None:
    """Each section's LR schedule keys together, as the training will check them."""
    from ..training.optim import OptimConfig  # deferred: importing the study package must not import torch

    for section in ("networks", "stitching", "ood", "probes"):
        values = config[section]
        try:
            OptimConfig(**{k: values[k] for k in SCHEDULE_KEYS}).validate()
        except StitchkitError as exc:
            raise StitchkitError(
                f"{source}: [{section}] scheduler = {values['scheduler']!r}, schedule_unit = "
                f"{values['schedule_unit']!r}, warmup_fraction = {values['warmup_fraction']!r}: {exc}"
            ) from None


def _fold_weights(nets: dict[str, Any], source: str) -> None:
    """networks.weights is the model option ``weights``: checked, made absolute and put there."""
    if nets["checkpoints"]:
        raise StitchkitError(
            f"{source}: networks.weights is for networks to train; the networks.checkpoints hold their own weights"
        )
    path = Path(nets["weights"]).expanduser().absolute()
    if not path.is_file():
        raise StitchkitError(f"{source}: networks.weights {nets['weights']!r} is not a file")
    given = nets["options"].get("weights")
    if given is not None and Path(str(given)).expanduser().absolute() != path:
        raise StitchkitError(
            f"{source}: networks.weights {nets['weights']!r} and networks.options.weights {given!r} differ; give one"
        )
    nets["weights"] = str(path)
    nets["options"] = {**nets["options"], "weights": str(path)}
