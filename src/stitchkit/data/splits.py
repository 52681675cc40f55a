"""The data of an experiment, resolved once (:class:`DataSplits`): a dataset's training split without
augmentation (the fit samples of direct matching, the fit set of training-free detectors), the same
split with its augmentation (what task loss matching trains on unless the networks were trained
without: :mod:`.augmentation`), its test split, and what they are.

Two sources, one record: a name (:meth:`DataSplits.from_name`: a registered dataset or your own
``folder:``/``npz:`` data, through :func:`~stitchkit.data.get_dataset`) or datasets given in memory
(:meth:`DataSplits.from_datasets`: any map-style dataset of ``(image tensor, int label)`` items, e.g.
a torchvision dataset, a ``TensorDataset`` or a ``Subset``; a ``DataLoader`` stands for its dataset).
Data in memory has no name that could key a run folder or a persistent cache, so ``named`` is False
and the callers refuse those (:func:`check_unnamed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from .. import data as datasets  # called through the package, so that a patched registry is seen
from ..errors import StitchkitError
from .base import DatasetInfo
from .items import check_item
from .loading import item_shape


class DataSplits:
    """A dataset's splits for one experiment (module docstring). A named dataset's splits are read on
    first use, the augmented training split never for direct matching alone. ``root`` is the data root
    a named dataset is read from (part of the keys of cached activations)."""

    def __init__(
        self,
        info: DatasetInfo,
        train: Dataset | Callable[[], Dataset],
        test: Dataset | Callable[[], Dataset],
        augmented: Dataset | Callable[[], Dataset],
        *,
        named: bool,
        root: str | None = None,
    ):
        self.info, self.named, self.root = info, named, root
        self._splits: dict[str, Dataset | Callable[[], Dataset]] = {
            "train": train,
            "test": test,
            "augmented": augmented,
        }

    def _split(self, which: str) -> Dataset:
        value = self._splits[which]
        if not isinstance(value, Dataset) and callable(value):
            value = self._splits[which] = value()
        return value

    @property
    def train(self) -> Dataset:
        """The training split without augmentation."""
        return self._split("train")

    @property
    def test(self) -> Dataset:
        return self._split("test")

    def train_augmented(self) -> Dataset:
        """The training split as trained on (a named dataset's default augmentation)."""
        return self._split("augmented")

    def train_split(self, augment: bool) -> Dataset:
        """The training split to train on: with the default augmentation (:meth:`train_augmented`) or
        without (:attr:`train`); :mod:`~stitchkit.data.augmentation` says which."""
        return self.train_augmented() if augment else self.train

    @property
    def augments(self) -> bool:
        """Whether the augmented training split differs from the plain one: a named dataset whose
        default training transform augments, or data in memory given with ``train_augmented``."""
        if self.named:
            return datasets.dataset_augments(self.info.name)
        return self._splits["augmented"] is not self._splits["train"]

    @classmethod
    def from_name(cls, name: str, *, root: str | None = None, download: bool = True) -> DataSplits:
        """A registered dataset (or ``folder:``/``npz:`` data), its splits read through
        :func:`~stitchkit.data.get_dataset` on first use."""
        info = datasets.dataset_info(name)

        def split(which: str, augment: bool | None) -> Callable[[], Dataset]:
            extra = {} if augment is None else {"augment": augment}
            return lambda: datasets.get_dataset(info.name, which, root=root, download=download, **extra)

        return cls(info, split("train", False), split("test", None), split("train", True), named=True, root=root)

    @classmethod
    def from_datasets(
        cls,
        train: Dataset | DataLoader,
        test: Dataset | DataLoader | None = None,
        *,
        train_augmented: Dataset | DataLoader | None = None,
        num_classes: int | None = None,
        name: str | None = None,
    ) -> DataSplits:
        """Datasets in memory: ``train`` (fit samples; also trained on unless ``train_augmented`` is
        given), ``test`` (default: ``train`` itself). The item shape is read from ``train``; the class
        count is ``num_classes`` or counted from the labels of both sets. ``name`` labels the data in
        the records (default: the dataset's class and size). Item 0 of each set is checked first
        (:func:`~stitchkit.data.items.check_item`)."""
        train, test = as_dataset(train, "train"), as_dataset(test, "test") if test is not None else None
        augmented = as_dataset(train_augmented, "train_augmented") if train_augmented is not None else None
        test = train if test is None else test
        for split, ds in (("train", train), ("test", test), ("train_augmented", augmented)):
            if ds is not None and len(ds) == 0:
                raise StitchkitError(f"the {split} data is empty")
            if ds is not None and (split == "train" or ds is not train):
                check_item(ds, split)
        if augmented is not None and len(augmented) != len(train):
            raise StitchkitError(
                f"train_augmented has {len(augmented)} items but train has {len(train)}; give the same items, augmented"
            )
        shape = tuple(int(s) for s in item_shape(train))
        if tuple(item_shape(test)) != shape:
            raise StitchkitError(f"the train items have shape {shape} but the test items {tuple(item_shape(test))}")
        classes = num_classes if num_classes is not None else max(count_classes(train), count_classes(test))
        if not isinstance(classes, int) or classes < 1:
            raise StitchkitError(f"num_classes must be a positive integer, got {classes!r}")
        label = name or (
            f"memory:{_describe(train)}" if test is train else f"memory:{_describe(train)}+{_describe(test)}"
        )
        info = DatasetInfo(
            label, classes, shape, test is not train, "datasets given in memory", "nothing (given in memory)"
        )
        return cls(info, train, test, augmented if augmented is not None else train, named=False)

    def with_num_classes(self, num_classes: int) -> DataSplits:
        """The same splits with another class count (data in memory whose labels lack the last classes)."""
        return DataSplits(
            replace(self.info, num_classes=int(num_classes)),
            self._splits["train"],
            self._splits["test"],
            self._splits["augmented"],
            named=self.named,
            root=self.root,
        )

    def train_sampler(self, dataset: Dataset):
        """The training sampler the dataset needs (CIFAR-5M's epochs of fresh images), else None."""
        return datasets.train_sampler_for(self.info.name, dataset) if self.named else None

    def describe(self) -> dict[str, Any]:
        return {
            "dataset": self.info.name,
            "named": self.named,
            "root": self.root,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "shape": list(self.info.shape),
            "num_classes": self.info.num_classes,
        }


def as_dataset(data: Any, what: str = "data") -> Dataset:
    """A map-style dataset: ``data`` itself, or a DataLoader's dataset (stitchkit makes its own batches)."""
    if isinstance(data, DataLoader):
        data = data.dataset
    if not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise StitchkitError(
            f"{what} must be a dataset name, a torch Dataset with __getitem__ and __len__, or a DataLoader over one; "
            f"got {type(data).__name__}"
        )
    return data


def _describe(dataset: Dataset) -> str:
    return f"{type(dataset).__name__}({len(dataset)})"


def _labels(dataset: Dataset) -> torch.Tensor | None:
    """The labels of a dataset without loading its images, where it keeps them (else None)."""
    if isinstance(dataset, Subset):
        inner = _labels(dataset.dataset)
        return None if inner is None else inner[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) > 1:
        return torch.as_tensor(dataset.tensors[1])
    for attribute in ("targets", "labels"):
        values = getattr(dataset, attribute, None)
        if values is not None and hasattr(values, "__len__") and len(values) == len(dataset):
            try:
                return torch.as_tensor(values)
            except (TypeError, ValueError, RuntimeError):
                return None
    return None


def count_classes(dataset: Dataset) -> int:
    """1 + the largest label (read from the dataset's label array where it keeps one, else item by item)."""
    labels = _labels(dataset)
    if labels is None:
        labels = torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))])
    if labels.dtype.is_floating_point or labels.dim() != 1:
        raise StitchkitError(
            "the labels must be integer class indices (one per item); give num_classes and integer labels"
        )
    if int(labels.min()) < 0:
        raise StitchkitError(f"labels must be class indices 0, 1, …; found {int(labels.min())}")
    return int(labels.max()) + 1


def check_unnamed(data: DataSplits, **uses: Any) -> None:
    """Refuse run folders and persistent caches for data in memory (no name to key them by)."""
    given = [what for what, value in uses.items() if value]
    if not data.named and given:
        raise StitchkitError(
            f"{given[0]} needs a dataset given by name (e.g. 'fashion' or 'folder:PATH'): "
            f"data in memory ({data.info.name}) has no name that could key saved runs or cached activations"
        )


__all__ = ["DataSplits", "as_dataset", "check_unnamed", "count_classes"]
