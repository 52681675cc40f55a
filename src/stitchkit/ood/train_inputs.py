"""What a detector training run reads and writes, checked before any work starts.

:func:`check_outputs` checks every output path (the training folders and the registry) without
creating anything, and refuses to train over finished detectors unless asked; :func:`load_training_data`
loads every set the run reads (pre-training, validation, fine-tuning ID and outliers), so that a missing
dataset or a subset larger than its set stops the run before pre-training rather than after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


from ..data import get_dataset
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
        raise StitchkitError(f"{finished[0]!r} already holds a trained detector; choose another -dir, or pass --overwrite to replace it")
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
        return {"pretrain": size(self.train), "validation": size(self.test), "finetune_id": size(self.ft_id),
                "finetune_outliers": size(self.ft_ood), "finetune_per_epoch": self.ft_per_epoch or None}


def load_training_data(config: DetectorTrainConfig, dataset: str, ft_id_name: str, input_shape: Sequence[int]) -> TrainingData:
    data = TrainingData()
    if config.epochs > 0:
        full = get_dataset(dataset, "train", root=config.data_root, augment=True, shape=input_shape)
        data.train = sample_subset(full, config.train_subset, config.seed, what=f"--train-subset: the train split of {dataset}")
    if config.val_subset != 0 and (config.epochs > 0 or config.ft_epochs > 0):
        test = get_dataset(dataset, "test", root=config.data_root, shape=input_shape)
        data.test = sample_subset(test, config.val_subset, what=f"--val-subset: the test split of {dataset}")
    if config.ft_epochs > 0:
        data.ft_id = get_dataset(ft_id_name, "train", root=config.ft_id_root or config.data_root, augment=config.ft_id_augment, shape=input_shape)
        data.ft_ood = get_dataset(config.ft_ood_dataset, "train", root=config.ft_ood_root or config.data_root, shape=input_shape)
        both = min(len(data.ft_id), len(data.ft_ood))
        check_subset_size(config.ft_samples, both, f"--ft-samples: the smaller fine-tuning set ({ft_id_name}: {len(data.ft_id)}, "
                                                   f"{config.ft_ood_dataset}: {len(data.ft_ood)})")
        data.ft_per_epoch = int(config.ft_samples or both)
    return data
