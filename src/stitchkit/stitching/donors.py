"""The two networks of a stitch ("donors"): loaded from a checkpoint or given as models, with their
identity (path and content hash), and layer lists resolved against them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..activations.extract import model_fingerprint
from ..data.augmentation import Augmentation, resolve_augmentation
from ..data.base import DatasetInfo
from ..errors import StitchkitError
from ..models.layers import layered
from ..models.loading import check_model_type, load_model, recorded_augmentation, requested_model_type


@dataclass
class Donor:
    """A donor network with its identity: where it came from and a content hash of its weights."""

    model: nn.Module
    path: str | None
    model_type: str
    fingerprint: str
    dataset: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "abs_path": str(Path(self.path).absolute()) if self.path else None,
            "model_type": self.model_type,
            "fingerprint": self.fingerprint,
            "model_spec": getattr(self.model, "stitchkit_spec", None),
        }


def load_donor(
    source: str | os.PathLike | nn.Module | Donor,
    model_type: str | None = None,
    *,
    dataset: str | None = None,
    model_options: dict[str, Any] | None = None,
) -> Donor:
    """A :class:`Donor` from a checkpoint path (a self-describing stitchkit checkpoint needs no type;
    ``model_type`` ``None``/``"-"``/``"auto"`` means "read it from the checkpoint"; the original's plain
    state_dicts need the architecture name and take their shapes from ``dataset``) or from a model."""
    if isinstance(source, Donor):
        return source
    if isinstance(source, nn.Module):
        spec = getattr(source, "stitchkit_spec", None)
        name = spec["name"] if isinstance(spec, dict) else type(source).__name__
        return Donor(source, None, name, model_fingerprint(source))
    path = str(source)
    wanted = requested_model_type(model_type)
    check_model_type(path, wanted)
    model, ckpt = load_model(path, wanted, dataset=dataset, **(model_options or {}))
    name = model.stitchkit_spec["name"] if hasattr(model, "stitchkit_spec") else (wanted or type(model).__name__)
    return Donor(model, path, name, model_fingerprint(model), ckpt.dataset)


def resolve_layers(model: nn.Module, layers: str | Sequence[str]) -> list[str]:
    """``"all"``, a comma-separated string or a list of layer names → validated names (the layered
    model resolves them: :meth:`~stitchkit.models.layers.LayeredModel.resolve`)."""
    return layered(model).resolve(layers)


def check_donors_fit(front: Donor, end: Donor, info: DatasetInfo) -> None:
    """Refuse donors whose input channels differ from the dataset's, or an end network whose class
    count does (the front network's head is never run, so its classes do not matter)."""
    for donor, role in ((front, "front"), (end, "end")):
        channels = (getattr(donor.model, "stitchkit_spec", None) or {}).get("in_channels")
        if channels is not None and channels != info.shape[0]:
            raise StitchkitError(
                f"the {role} model takes {channels}-channel inputs but dataset {info.name} has {info.shape[0]} channels"
            )
    end_classes = (getattr(end.model, "stitchkit_spec", None) or {}).get("num_classes")
    if end_classes is not None and end_classes != info.num_classes:
        raise StitchkitError(f"the end model has {end_classes} classes but dataset {info.name} has {info.num_classes}")


def resolve_dataset(name: str | None, front: Donor, end: Donor) -> str:
    """The dataset of a stitch: the one given, else the one both checkpoints were trained on."""
    if name:
        return name
    described = {d.dataset for d in (front, end) if d.dataset}
    if len(described) > 1:
        raise StitchkitError(
            f"the checkpoints were trained on different datasets ({', '.join(sorted(described))}); choose one with -d"
        )
    return described.pop() if described else "cifar10"


@dataclass(frozen=True)
class StitchAugmentation:
    """The augmentation of task loss matching's training images (:mod:`stitchkit.data.augmentation`):
    the end network's, whose task loss is the one optimised, when following the networks; ``note``
    says so when the front network was trained otherwise (None when they agree). ``data_augments``:
    whether the data has an augmentation to leave out."""

    resolved: Augmentation
    note: str | None
    data_augments: bool = True

    @property
    def acting(self) -> str:
        """As it acts, for run names: ``"none"`` only where the images are not the dataset's default
        augmentation's (data without one trains on the same images either way)."""
        return "none" if not self.resolved.augment and self.data_augments else "dataset"

    def describe(self) -> str:
        return self.resolved.describe() + (f"; {self.note}" if self.note else "")


def stitch_augmentation(choice: str, front: Donor, end: Donor, data_augments: bool = True) -> StitchAugmentation:
    """Resolve ``choice`` (``StitchSettings.augment``) for the donors: by the end network's record."""
    resolved = resolve_augmentation(choice, recorded_augmentation(end.model), "the end network")
    front_resolved = resolve_augmentation(choice, recorded_augmentation(front.model), "the front network")
    note = None
    if choice == "network" and front_resolved.augment != resolved.augment:
        said = {True: "with", False: "without"}
        note = (
            f"the front network was trained {said[front_resolved.augment]} augmentation, the end network "
            f"{said[resolved.augment]}: "
            "task loss matching follows the end network, whose task loss it optimises"
        )
    return StitchAugmentation(resolved, note, data_augments)
