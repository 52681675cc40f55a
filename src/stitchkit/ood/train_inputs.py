"""What a detector training run reads and writes, checked before any work starts.

:func:`check_outputs` checks every output path (the training folders and the registry) without
creating anything, and refuses to train over finished detectors unless asked; :func:`load_training_data`
loads every set the run reads (pre-training, validation, fine-tuning ID and outliers), so that a missing
dataset or a subset larger than its set stops the run before pre-training rather than after it; the
images fed through the source network get its augmentation (:func:`resolve_detector_augmentation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import dataset_augments, get_dataset
from ..data.augmentation import Augmentation, choice_of, resolve_augmentation
from ..data.loading import check_subset_size, sample_subset
from ..errors import StitchkitError
from ..utils.io import check_writable_dir
from .registry import DetectorRegistry
from .train_config import DetectorTrainConfig


def check_outputs(config: DetectorTrainConfig, dirs: dict[str, Path]):
    """Every output path, checked before any work (nothing is created here): the training folders
    can be written and hold no finished detectors (unless ``overwrite``), and the registry folder
    can be written and its ``meta.json`` read. Returns the registry (None without registering)."""
    for d in dirs.values():
        check_writable_dir(d, "detector training folder (-dir)")
    finished = [str(d) for d in dirs.values() if (d / "detector.json").exists()]
    if finished and not config.overwrite:
        raise StitchkitError(
            f"{finished[0]!r} already holds a trained detector; choose another -dir, or pass --overwrite to replace it"
        )
    if not config.register:
        return None
    check_writable_dir(config.final_save_dir, "detector registry folder (-fdir)")
    registry = DetectorRegistry(config.final_save_dir)
    registry.entries()  # an unreadable meta.json stops the run now, not after training
    return registry


@dataclass
class TrainingData:
    """Every set a detector run reads, loaded before training so that a missing one stops it early."""

    train: Any = None
    test: Any = None
    ft_id: Any = None
    ft_ood: Any = None
    ft_per_epoch: int = 0

    def counts(self) -> dict[str, int | None]:
        """What was used (recorded in config.json)."""
        size = lambda d: None if d is None else len(d)  # noqa: E731
        return {
            "pretrain": size(self.train),
            "validation": size(self.test),
            "finetune_id": size(self.ft_id),
            "finetune_outliers": size(self.ft_ood),
            "finetune_per_epoch": self.ft_per_epoch or None,
        }


@dataclass(frozen=True)
class DetectorAugmentation:
    """The augmentation of the images a detector run feeds through the source network: the pre-training
    set and the ID half of the fine-tuning (the outliers keep their own set's default)."""

    pretrain: Augmentation
    finetune_id: Augmentation

    def identity(self, config: DetectorTrainConfig, dataset: str, ft_id_dataset: str) -> dict[str, Any]:
        """Its part of the detector id, as it acts, so that the id changes exactly where the images
        differ from those of every run before the option existed: pre-training on the dataset's default
        augmentation, the ID half as ``ft_id_augment`` said (default none)."""
        if config.ft_id_augment is not None:
            ft_id = bool(config.ft_id_augment)  # as given, as before
        else:
            ft_id = config.ft_epochs > 0 and self.finetune_id.augment and dataset_augments(ft_id_dataset)
        out: dict[str, Any] = {"ft_id_augment": ft_id}
        if config.epochs > 0 and not self.pretrain.augment and dataset_augments(dataset):
            out["augment"] = False
        return out

    def conventions(self) -> dict[str, str]:
        return {
            "pretrain_augmentation": self.pretrain.describe(),
            "finetune_id_augmentation": self.finetune_id.describe(),
            "finetune_outlier_augmentation": "the outlier set's default training augmentation",
        }


def resolve_detector_augmentation(config: DetectorTrainConfig, recorded: bool | None) -> DetectorAugmentation:
    """``config.augment`` for a source network whose checkpoint records ``recorded``; an explicit
    ``ft_id_augment`` overrides it for the ID half of the fine-tuning."""
    pretrain = resolve_augmentation(config.augment, recorded, "the source network")
    if config.ft_id_augment is None:
        return DetectorAugmentation(pretrain, pretrain)
    return DetectorAugmentation(
        pretrain,
        Augmentation(
            choice_of(config.ft_id_augment),
            bool(config.ft_id_augment),
            f"asked for by ft_id_augment = {bool(config.ft_id_augment)}",
        ),
    )


def load_training_data(
    config: DetectorTrainConfig,
    dataset: str,
    ft_id_name: str,
    input_shape: Sequence[int],
    augmentation: DetectorAugmentation,
) -> TrainingData:
    data = TrainingData()
    if config.epochs > 0:
        full = get_dataset(
            dataset, "train", root=config.data_root, augment=augmentation.pretrain.augment, shape=input_shape
        )
        data.train = sample_subset(
            full, config.train_subset, config.seed, what=f"--train-subset: the train split of {dataset}"
        )
    if config.val_subset != 0 and (config.epochs > 0 or config.ft_epochs > 0):
        test = get_dataset(dataset, "test", root=config.data_root, shape=input_shape)
        data.test = sample_subset(test, config.val_subset, what=f"--val-subset: the test split of {dataset}")
    if config.ft_epochs > 0:
        data.ft_id = get_dataset(
            ft_id_name,
            "train",
            root=config.ft_id_root or config.data_root,
            augment=augmentation.finetune_id.augment,
            shape=input_shape,
        )
        data.ft_ood = get_dataset(
            config.ft_ood_dataset, "train", root=config.ft_ood_root or config.data_root, shape=input_shape
        )
        both = min(len(data.ft_id), len(data.ft_ood))
        check_subset_size(
            config.ft_samples,
            both,
            f"--ft-samples: the smaller fine-tuning set ({ft_id_name}: {len(data.ft_id)}, "
            f"{config.ft_ood_dataset}: {len(data.ft_ood)})",
        )
        data.ft_per_epoch = int(config.ft_samples or both)
    return data
