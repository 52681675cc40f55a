"""Batches of a dataset for the compute stages: one function, :func:`make_batches`, picks the path.

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

from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..choices import DATA_PATHS
from ..errors import StitchkitError, unknown_name
from ..utils.seed import seed_worker
from .device_batches import DeviceBatches, unwrap_subsets, can_batch_on_device, device_bytes

#: Device memory the uint8 images may take on the auto path (CIFAR-10's training split: 0.15 GB).
DEFAULT_DEVICE_DATA_GB = 4.0


def check_data_path(data_path: str) -> str:
    if data_path not in DATA_PATHS:
        raise unknown_name("data path", str(data_path), DATA_PATHS)
    return data_path


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, workers: int = 0, prefetch: int = 1,
                device: torch.device | None = None, sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader with the original's knobs, minus its crashes (prefetch only with workers)."""
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(prefetch_factor=prefetch, persistent_workers=True, worker_init_fn=seed_worker)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler, num_workers=workers,
                      pin_memory=device is not None and torch.device(device).type == "cuda", **kwargs)


def make_batches(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    device: torch.device | str | None = None,
    workers: int = 0,
    prefetch: int = 1,
    sampler: Sampler | None = None,
    data_path: str = "auto",
    memory_limit_gb: float = DEFAULT_DEVICE_DATA_GB,
    channels_last: bool = False,
) -> Iterable:
    """``(images, labels)`` batches of ``dataset`` by the path ``data_path`` chooses (module docstring).

    Device-path batches are already on ``device``; loader batches are moved by the consumer, as before.
    """
    check_data_path(data_path)
    device = torch.device(device) if device is not None else torch.device("cpu")
    reason = can_batch_on_device(dataset)
    if data_path == "device" and reason is not None:
        raise StitchkitError(f"--data-path device cannot serve this dataset: {reason}; use --data-path loader or auto")
    use_device = data_path == "device" or (data_path == "auto" and reason is None and device_bytes(dataset) <= memory_limit_gb * 2**30)
    if use_device:
        return DeviceBatches(dataset, batch_size, shuffle=shuffle, sampler=sampler, device=device, channels_last=channels_last)
    return make_loader(dataset, batch_size, shuffle=shuffle, workers=workers, prefetch=prefetch, device=device, sampler=sampler)


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
