"""Batches and subsets of a dataset for the compute stages: :func:`make_batches` picks the path,
:func:`sample_subset` is the one subset (the first N items, or a seeded random N).

* ``"device"``: :class:`~stitchkit.data.device_batches.DeviceBatches` — the uint8 images held on the
  compute device, batches built there with tensor operations (exactly the DataLoader's samples and
  augmentation draws with ``workers=0``; no worker processes between the data and the kernels).
* ``"loader"``: a :class:`~torch.utils.data.DataLoader` with the original's knobs (workers, prefetch,
  pinned memory on CUDA).
* ``"auto"`` (default): the device path when the dataset allows it (:func:`can_batch_on_device`) and its
  images fit ``memory_limit_gb``; else the loader. (Loader workers then do not apply: the device path
  needs none, and its samples and draws are those of a loader with ``workers=0``.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from ..choices import DATA_PATHS
from ..errors import StitchkitError, unknown_name, warn
from ..utils.seed import seed_worker
from .device_batches import DeviceBatches, can_batch_on_device, device_bytes, unwrap_subsets

#: Device memory the uint8 images may take on the auto path (CIFAR-10's training split: 0.15 GB).
DEFAULT_DEVICE_DATA_GB = 4.0


def check_data_path(data_path: str) -> str:
    if data_path not in DATA_PATHS:
        raise unknown_name("data path", str(data_path), DATA_PATHS)
    return data_path


@dataclass(frozen=True, kw_only=True)
class BatchPath:
    """Which path serves the batches (module docstring): ``data_path`` (``auto``, ``device`` or ``loader``),
    the device memory the auto path may give the images (``memory_limit_gb``), and whether device-path
    batches come in the ``channels_last`` layout."""

    data_path: str = "auto"
    memory_limit_gb: float = DEFAULT_DEVICE_DATA_GB
    channels_last: bool = False

    def __post_init__(self) -> None:
        check_data_path(self.data_path)


def check_subset_size(n: int | None, available: int, what: str) -> None:
    """Refuse a subset larger than the set it is drawn from (it would be the whole set, recorded as
    the number asked for). ``what`` names the option and the set, e.g. "--train-subset … the train
    split of fashion"."""
    if n is not None and n > available:
        raise StitchkitError(
            f"{what} has only {available} images, fewer than the {n} asked for; ask for at most {available}, "
            "or leave the option out to use all of them"
        )


def clamped_count(n: int | None, available: int, what: str) -> int | None:
    """The number of items a count takes from a set of ``available``: ``n`` (None: all), or, when ``n``
    asks for more than there are, all of them with a warning, so that results record and name the number
    used. ``what`` names the option and the set, e.g. "-pinv-samples (K): the training split of digits"."""
    if n is not None and n > available:
        warn(
            f"{what} has only {available} images, fewer than the {n} asked for; using all {available} (recorded as "
            f"{available})"
        )
        return available
    return n


def sample_subset(
    dataset: Dataset,
    n_samples: int | None,
    seed: int | None = None,
    *,
    what: str | None = None,
    clamp: str | None = None,
) -> Dataset:
    """The first ``n_samples`` items (seed None, like the original's test-set measures) or a seeded
    random subset of that size (like the original's K training images for direct matching); all of
    ``dataset`` when ``n_samples`` is None or covers it. With ``what`` (the option and the set, for the
    message) a subset larger than the set is refused (:func:`check_subset_size`); with ``clamp`` instead
    it takes all of the set and says so (:func:`clamped_count`)."""
    if what is not None:
        check_subset_size(n_samples, len(dataset), what)
    if clamp is not None:
        n_samples = clamped_count(n_samples, len(dataset), clamp)
    if n_samples is None or n_samples >= len(dataset):
        return dataset
    if n_samples < 1:
        raise StitchkitError(f"number of samples must be at least 1, got {n_samples}")
    if seed is None:
        return Subset(dataset, list(range(n_samples)))
    generator = torch.Generator().manual_seed(seed)
    return Subset(dataset, torch.randperm(len(dataset), generator=generator)[:n_samples].tolist())


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    workers: int = 0,
    prefetch: int = 1,
    device: torch.device | None = None,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A DataLoader with the original's knobs, minus its crashes (prefetch only with workers)."""
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(prefetch_factor=prefetch, persistent_workers=True, worker_init_fn=seed_worker)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device is not None and torch.device(device).type == "cuda",
        **kwargs,
    )


def make_batches(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    device: torch.device | str | None = None,
    workers: int = 0,
    prefetch: int = 1,
    sampler: Sampler | None = None,
    path: BatchPath | None = None,
) -> Iterable:
    """``(images, labels)`` batches of ``dataset`` by the path ``path`` chooses (default :class:`BatchPath`:
    ``auto``; module docstring).

    Device-path batches are already on ``device``; loader batches are moved by the consumer, as before.
    """
    path = path or BatchPath()
    data_path, channels_last = path.data_path, path.channels_last
    device = torch.device(device) if device is not None else torch.device("cpu")
    reason = can_batch_on_device(dataset)
    if data_path == "device" and reason is not None:
        raise StitchkitError(f"--data-path device cannot serve this dataset: {reason}; use --data-path loader or auto")
    fits = reason is None and device_bytes(dataset) <= path.memory_limit_gb * 2**30
    use_device = data_path == "device" or (data_path == "auto" and fits)
    if use_device:
        return DeviceBatches(
            dataset, batch_size, shuffle=shuffle, sampler=sampler, device=device, channels_last=channels_last
        )
    return make_loader(
        dataset, batch_size, shuffle=shuffle, workers=workers, prefetch=prefetch, device=device, sampler=sampler
    )


def batches_of(
    data: Any,
    batch_size: int,
    *,
    device: torch.device | str | None = None,
    workers: int = 0,
    prefetch: int = 1,
    data_path: str = "auto",
) -> Iterable:
    """Batches in order: ``data`` itself when it is already batched (a DataLoader, device batches or any
    iterable without item access), else :func:`make_batches` of the dataset, unshuffled."""
    if isinstance(data, (DataLoader, DeviceBatches)) or not hasattr(data, "__getitem__"):
        return data
    return make_batches(
        data,
        batch_size,
        shuffle=False,
        device=device,
        workers=workers,
        prefetch=prefetch,
        path=BatchPath(data_path=data_path),
    )


def item_shape(dataset: Dataset) -> tuple[int, ...]:
    """The shape of one item's image: from the dataset's recipe when it has one (no item is loaded, so
    no per-image transform has to be built), else from its first item."""
    base, _ = unwrap_subsets(dataset)
    recipe = getattr(base, "recipe", None)
    if recipe is not None:
        return tuple(recipe.target or recipe.produced)
    return tuple(dataset[0][0].shape)


def describe_batches(batches: Iterable) -> str:
    """A few words for run records: which path served the data."""
    if isinstance(batches, DeviceBatches):
        return f"device ({batches.device.type}, batched tensor augmentation: {batches.recipe.ops})"
    workers = getattr(batches, "num_workers", 0)
    return f"loader ({workers} workers)"
