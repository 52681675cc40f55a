"""The data of one grid: the fit and test subsets every pair shares, their cache keys, and the three
batch streams (fit, test, training) built from them on first use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.loading import BatchPath, check_subset_size, clamped_count, describe_batches, make_batches, sample_subset
from ..data.splits import DataSplits
from .settings import StitchSettings


@dataclass
class GridData:
    """The splits and the subsets of a grid: K plain training images to fit on (``fit_set``) and the
    first ``n_test`` test images (``test_set``), with the keys that name them in activation caches."""

    splits: DataSplits
    fit_set: Any
    test_set: Any
    sample_keys: dict[str, str]

    @property
    def info(self):
        return self.splits.info

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.info.shape)

    @property
    def n_fit(self) -> int:
        return len(self.fit_set)

    @property
    def n_test(self) -> int:
        return len(self.test_set)

    @property
    def test_images(self) -> np.ndarray:
        """The test images' indices in the test split: the first ``n_test``, in order."""
        return np.arange(self.n_test, dtype=np.int64)


def grid_data(splits: DataSplits, settings: StitchSettings) -> GridData:
    """The subsets of ``splits`` that ``settings`` ask for. K and the test samples above their split use
    all of it, said and recorded in ``settings`` (the grid's own copy), so that run names, keys and
    labels carry the number used. Only the K fit images of the training split are read unless we train."""
    s, name = settings, splits.info.name
    train_plain, test_full = splits.train, splits.test
    if (
        s.epochs > 0
    ):  # (a K above the split's size fits on all of it, recorded as n_fit, like the default K = 100 on tiny sets)
        check_subset_size(
            s.train_samples, len(train_plain), f"--train-subset (train_samples): the training split of {name}"
        )
    s.fit_samples = clamped_count(
        s.fit_samples, len(train_plain), f"-pinv-samples (fit_samples, K): the training split of {name}"
    )
    s.test_samples = clamped_count(
        s.test_samples, len(test_full), f"--test-samples (test_samples): the test split of {name}"
    )
    keys = {
        "fit": f"{name}|{s.data_root}|train|plain|K={s.fit_samples}|seed={s.seed}",
        "test": f"{name}|{s.data_root}|test|plain|n={s.test_samples}",
    }
    return GridData(
        splits, sample_subset(train_plain, s.fit_samples, s.seed), sample_subset(test_full, s.test_samples, None), keys
    )


@dataclass(frozen=True)
class BatchOptions:
    """How a grid's batches are made (:func:`~stitchkit.data.loading.make_batches`)."""

    batch_size: int
    device: torch.device
    workers: int
    prefetch: int
    data_path: str
    channels_last: bool


class GridBatches:
    """The grid's fit, test and training batches, each built on first use (the training batches never
    with ``epochs == 0``): the training split with the resolved ``augment``, ``train_samples`` of it."""

    def __init__(self, data: GridData, options: BatchOptions, *, augment: bool, train_samples: int | None, seed: int):
        self.data, self.options = data, options
        self.augment, self.train_samples, self.seed = augment, train_samples, seed
        self._fit = self._test = self._train = None

    def _batches(self, dataset, shuffle: bool, sampler=None):
        o = self.options
        return make_batches(
            dataset,
            o.batch_size,
            shuffle=shuffle,
            device=o.device,
            workers=o.workers,
            prefetch=o.prefetch,
            sampler=sampler,
            path=BatchPath(data_path=o.data_path, channels_last=o.channels_last),
        )

    @property
    def fit(self):
        if self._fit is None:
            self._fit = self._batches(self.data.fit_set, False)
        return self._fit

    @property
    def test(self):
        if self._test is None:
            self._test = self._batches(self.data.test_set, False)
        return self._test

    @property
    def train(self):
        if self._train is None:
            splits = self.data.splits
            train_set = sample_subset(splits.train_split(self.augment), self.train_samples, self.seed)
            self._train = self._batches(train_set, True, splits.train_sampler(train_set))
        return self._train

    def describe(self) -> str:
        """How the batches reach the model (the training batches', else the test batches')."""
        return describe_batches(self._train if self._train is not None else self.test)
