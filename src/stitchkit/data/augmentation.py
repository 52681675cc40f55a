"""Which augmentation the images get that are fed through a trained network to train something else
(a stitching layer by task loss matching, an OOD detector, a linear probe).

A network sees, at training time, either its dataset's default training augmentation or none
(``stitchkit train --no-augment``), and its checkpoint records which (``training["augment"]``). What
trains on its representations should by default see the same kind of images: images the network never
saw in training move its representations off the distribution it was trained on, and whatever learns
from them learns that shift too. So the choice ``"network"`` (the default) follows the record, and a
checkpoint that records nothing (the original's plain state_dicts, a model built in memory) gets the
dataset's default augmentation, as the original always used. ``"dataset"`` and ``"none"`` override the
record. The names are declared once in :data:`stitchkit.choices.AUGMENTATIONS`.

Torch-free: the study plans its units with it before any computation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..choices import AUGMENTATIONS, DEFAULT_AUGMENTATION
from ..errors import StitchkitError

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_AUGMENTATION",
    "Augmentation",
    "check_augmentation",
    "choice_for",
    "choice_of",
    "recorded_augment",
    "resolve_augmentation",
]


def choice_of(augment: bool) -> str:
    """The choice that gives images with (``"dataset"``) or without (``"none"``) the dataset's default augmentation."""
    return "dataset" if augment else "none"


@dataclass(frozen=True)
class Augmentation:
    """A resolved choice: ``augment`` says whether the dataset's default training augmentation applies;
    ``choice`` is what was asked for and ``reason`` one phrase on why (both recorded with results)."""

    choice: str
    augment: bool
    reason: str

    @property
    def name(self) -> str:
        """``"dataset"`` or ``"none"``: what the images get."""
        return choice_of(self.augment)

    def describe(self) -> str:
        """The recorded convention, e.g. ``"none (augment = network: the end network's checkpoint records augment:
        false)"``."""
        return f"{self.name} (augment = {self.choice}: {self.reason})"


def check_augmentation(choice: Any, where: str = "augment") -> str:
    """``choice`` if it is one of :data:`AUGMENTATIONS`, else a clear error naming ``where`` it was given."""
    if not isinstance(choice, str) or choice not in AUGMENTATIONS:
        raise StitchkitError(f"unknown augmentation {choice!r} ({where}); choose one of: {', '.join(AUGMENTATIONS)}")
    return choice


def recorded_augment(training: Mapping[str, Any] | None) -> bool | None:
    """What a checkpoint's training record says about the network's augmentation: ``True`` (the
    dataset's default), ``False`` (none), or ``None`` when it records nothing. The record is a
    checkpoint's ``training`` dict, or the ``config.json`` that describes a bare ``model_<e>.pt``
    (whose training settings are under ``"settings"``)."""
    if not isinstance(training, Mapping):
        return None
    settings = training.get("settings", training)
    value = settings.get("augment") if isinstance(settings, Mapping) else None
    return value if isinstance(value, bool) else None


def resolve_augmentation(choice: str, recorded: bool | None, network: str = "the network") -> Augmentation:
    """The augmentation that ``choice`` gives for a network whose checkpoint records ``recorded``
    (:func:`recorded_augment`); ``network`` names it in the reason."""
    check_augmentation(choice)
    said = "records nothing" if recorded is None else f"records augment: {str(recorded).lower()}"
    if choice != "network":
        return Augmentation(choice, choice == "dataset", f"asked for; {network}'s checkpoint {said}")
    if recorded is None:
        return Augmentation(choice, True, f"{network}'s checkpoint {said}, so the dataset's default, as the original")
    return Augmentation(choice, recorded, f"{network}'s checkpoint {said}")


def choice_for(flags: list[bool] | tuple[bool, ...]) -> str:
    """The choice that gives these per-network results of one resolution (a study unit stores the
    results): ``"dataset"`` or ``"none"`` when they agree; when they differ only ``"network"`` (the
    networks' own records) can have given them."""
    if not flags:
        raise StitchkitError("internal: no networks to choose an augmentation for")
    if all(flags) or not any(flags):
        return choice_of(flags[0])
    return DEFAULT_AUGMENTATION
