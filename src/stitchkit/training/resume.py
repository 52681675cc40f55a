"""Where a training run starts (:func:`training_start`): a fresh model, or one resumed from a checkpoint.

Is a checkpoint a fair start for this training run? (``stitchkit train --resume``)

Resuming from another run's ``last.pt`` — a different seed, dataset, model or recipe — would produce a
mixed run whose ``config.json`` describes only one of them. :func:`resume_mismatches` lists what
differs between the checkpoint's recorded training settings and the run's; the trainer refuses a
checkpoint with any difference unless the user asks for it explicitly (``--force-resume``), and then
records the differences in ``config.json``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import StitchkitError
from ..models import get_model
from ..models.checkpoint import load_checkpoint, load_state_into, plain_data
from .optim import OptimConfig

if TYPE_CHECKING:  # annotation only: base imports this module
    from .base import TrainSettings

#: Settings that change the trained weights (what must agree). The epoch count may grow on resume;
#: folders, devices, loader workers and display options do not change the result.
RESULT_SETTINGS = ("seed", "batch_size", "optim", "grad_clip", "amp", "train_subset", "augment")


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {value[k]!r}" for k in sorted(value)) + "}"
    return repr(value)


def resume_mismatches(
    checkpoint_spec: Mapping[str, Any] | None,
    checkpoint_dataset: str | None,
    checkpoint_settings: Mapping[str, Any],
    spec: Mapping[str, Any],
    dataset: str,
    settings: Mapping[str, Any],
) -> list[str]:
    """What differs between a checkpoint and the run that would resume from it, one phrase each
    (empty: they agree). ``*_settings`` are ``asdict(TrainSettings)``; a checkpoint without recorded
    settings (not written by ``stitchkit train``) only has its model and dataset compared."""
    out: list[str] = []
    if checkpoint_spec is not None and dict(checkpoint_spec) != dict(spec):
        out.append(
            f"model {checkpoint_spec.get('name')} with {_show(checkpoint_spec.get('options', {}))} "
            f"(this run: {spec.get('name')} with {_show(spec.get('options', {}))})"
        )
    if checkpoint_dataset is not None and checkpoint_dataset != dataset:
        out.append(f"dataset {checkpoint_dataset} (this run: {dataset})")
    if not checkpoint_settings:
        return out
    for key in RESULT_SETTINGS:
        theirs, ours = checkpoint_settings.get(key), settings.get(key)
        if isinstance(theirs, Mapping) and isinstance(ours, Mapping):
            keys = sorted(set(theirs) | set(ours))
            diff = [k for k in keys if theirs.get(k) != ours.get(k)]
            out += [f"{key}.{k} {theirs.get(k)!r} (this run: {ours.get(k)!r})" for k in diff]
        elif theirs != ours:
            out.append(f"{key} {theirs!r} (this run: {ours!r})")
    return out


def read_logged_rows(path: Path) -> list[dict[str, float]]:
    """The rows of a ``training_logs.csv`` as numbers (none when the file is absent)."""
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]


@dataclass
class TrainingStart:
    """Where training starts: a fresh model, or a resumed one with its checkpoint and logged history."""

    model: torch.nn.Module
    epoch: int = 0
    checkpoint: Any = None
    history_rows: list[dict[str, float]] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def training_start(settings: TrainSettings, info: Any, save_dir: Path) -> TrainingStart:
    """The model a run trains: fresh, or (``settings.resume``) loaded from a checked checkpoint with the
    history logged up to its epoch."""
    model = get_model(
        settings.model,
        num_classes=info.num_classes,
        in_channels=info.shape[0],
        input_size=tuple(info.shape[1:]),
        **settings.model_options,
    )
    if not settings.resume:
        return TrainingStart(model)
    ckpt, mismatches = checked_resume(settings, model.stitchkit_spec, info.name)
    load_state_into(model, ckpt.state_dict, source=f"checkpoint {settings.resume!r}")
    epoch = int(ckpt.epoch or 0)
    if epoch >= settings.epochs:
        raise StitchkitError(f"{settings.resume!r} has already been trained for {epoch} epochs; ask for more with -e")
    rows = [r for r in read_logged_rows(save_dir / "training_logs.csv") if r.get("epoch", math.inf) <= epoch]
    return TrainingStart(model, epoch, ckpt, rows, mismatches)


def checked_resume(settings: TrainSettings, spec: dict[str, Any], dataset: str):
    """The checkpoint to resume from, and what differs from this run (refused unless forced)."""
    ckpt = load_checkpoint(settings.resume)
    if "optimizer" not in ckpt.extra:
        raise StitchkitError(
            f"{settings.resume!r} has no optimizer state to resume from; resume from the run's last.pt"
        )
    recorded = ckpt.training.get("settings", ckpt.training) if isinstance(ckpt.training, dict) else {}
    if isinstance(recorded.get("optim"), dict):  # a checkpoint from before an option existed ran with its default
        recorded = {**recorded, "optim": {**asdict(OptimConfig()), **recorded["optim"]}}
    mismatches = resume_mismatches(
        ckpt.model_spec, ckpt.dataset, recorded, plain_data(spec), dataset, plain_data(asdict(settings))
    )
    if mismatches and not settings.force_resume:
        raise StitchkitError(
            f"cannot resume from {settings.resume!r}: it comes from a different run ({'; '.join(mismatches)}); resume "
            f"from this "
            "run's last.pt, or pass --force-resume to continue from it anyway (the differences are then recorded in "
            "config.json)"
        )
    return ckpt, mismatches
