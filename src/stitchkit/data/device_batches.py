"""Batches straight from memory: a dataset held as uint8 on the compute device, augmented there in batches.

A :class:`~torch.utils.data.DataLoader` turns every image into a PIL image, augments it alone and
collates the batch on the CPU; on a GPU its workers, not the kernels, then set the pace, and on a CPU
the per-image work costs as much as a small network's forward pass. When a dataset is a uint8 array
(CIFAR-10/100, SVHN, MNIST, Fashion-MNIST, your own ``npz:`` arrays) and fits the memory budget,
:class:`DeviceBatches` instead keeps it on the device once and builds every batch with a handful of
tensor operations: gather, ``/255``, horizontal flip, zero padding and per-image crops, the resize and
channel conversion of ``get_dataset(shape=...)`` and ImageNet-style normalisation.

**Exactly the loader's batches.** The order of the samples and every random draw of the augmentation
are those of a ``DataLoader(dataset, batch_size, shuffle, sampler, num_workers=0)`` over the same
dataset from the same global RNG state: the sample order comes from a DataLoader over the indices
(the same sampler, the same seed draws), and the flip and crop parameters are drawn per image, in the
same order and with the same calls as torchvision's ``RandomHorizontalFlip`` and ``RandomCrop``. The
pixels are then bitwise those of the PIL path (tested), so switching paths changes no result. (With
``workers > 0`` a DataLoader draws in its worker processes instead, so its stream differs from both.)

Augmentations other than flip-and-crop (the affine jitter of MNIST and SVHN, ImageNet's random resized
crops) and custom transforms are not reproduced here: :func:`can_batch_on_device` says no, and
:func:`stitchkit.data.loading.make_batches` falls back to a DataLoader.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from .transforms import convert_channels, normalize_for

#: Augmentations the batched path reproduces exactly (the names of the ops factories in ``transforms``).
BATCHED_AUGMENTATIONS = ("no_ops", "flip_and_crop")
CROP_PADDING = 4  # transforms.flip_and_crop: RandomCrop(size, padding=4)


@dataclass(frozen=True)
class TransformRecipe:
    """What a registered dataset's default transform does, in a form batched code can apply.

    ``ops`` names the geometric steps (``"no_ops"``, ``"flip_and_crop"``, ``"affine_jitter"``, …);
    ``produced`` is the item shape those steps give; ``target`` the shape that ``get_dataset(shape=...)``
    converts to afterwards (None: no conversion); ``mean_std`` the normalisation (None: raw [0, 1]).
    """

    ops: str
    produced: tuple[int, int, int]
    target: tuple[int, int, int] | None = None
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None


def unwrap_subsets(dataset: Dataset) -> tuple[Dataset, list[int] | None]:
    """The innermost dataset under nested ``Subset``\\ s and the indices into it (None: all, in order)."""
    indices: list[int] | None = None
    while isinstance(dataset, Subset):
        inner = [int(i) for i in dataset.indices]
        indices = inner if indices is None else [inner[i] for i in indices]
        dataset = dataset.dataset
    return dataset, indices


def _is_plain_array(images: Any) -> bool:
    return isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim in (3, 4)


def can_batch_on_device(dataset: Dataset) -> str | None:
    """None when :class:`DeviceBatches` reproduces ``dataset``'s items exactly; else the reason why not."""
    base, _ = unwrap_subsets(dataset)
    recipe = getattr(base, "recipe", None)
    if recipe is None:
        return "the dataset has a custom transform or is not a registered array dataset"
    if recipe.ops not in BATCHED_AUGMENTATIONS:
        return f"its augmentation ({recipe.ops}) is applied per image"
    if not _is_plain_array(getattr(base, "images", None)):
        return "its images are not one uint8 array in memory"
    labels = getattr(base, "labels", None)
    if not isinstance(labels, int) and not isinstance(labels, np.ndarray):
        return "its labels are not an array"
    return None


def device_bytes(dataset: Dataset) -> int:
    """Bytes the uint8 images of ``dataset`` (its subset only) take on the device."""
    base, indices = unwrap_subsets(dataset)
    images = base.images
    per_item = int(np.prod(images.shape[1:]))
    return per_item * (len(indices) if indices is not None else len(images))


class _Indices(Dataset):
    """Positions 0..n-1: a DataLoader over it draws exactly what one over the real dataset draws."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index


class DeviceBatches:
    """``(images, labels)`` batches of a uint8 array dataset built on ``device`` (see the module docstring).

    Iterating gives float32 ``(B, C, H, W)`` images and int64 labels, both on ``device``; ``len()`` is
    the number of batches, ``.dataset`` the wrapped dataset and ``.sampler`` the sampler (so that the
    training loop's ``set_epoch`` reaches a DistributedSampler), as on a DataLoader.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        sampler: Sampler | None = None,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        drop_last: bool = False,
    ):
        reason = can_batch_on_device(dataset)
        if reason is not None:
            raise ValueError(f"cannot batch this dataset on the device: {reason}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.channels_last = channels_last
        base, indices = unwrap_subsets(dataset)
        self.recipe: TransformRecipe = base.recipe
        images = base.images if indices is None else base.images[np.asarray(indices, dtype=np.int64)]
        with warnings.catch_warnings():  # read-only memory maps are fine: the images are only ever read
            warnings.simplefilter("ignore", UserWarning)
            pixels = torch.from_numpy(np.ascontiguousarray(images))
        pixels = pixels.unsqueeze(1) if pixels.dim() == 3 else pixels.permute(0, 3, 1, 2)  # N×C×H×W, as ToTensor
        self.images = pixels.contiguous().to(self.device)
        labels = base.labels
        if isinstance(labels, int):
            self.labels = torch.full((len(pixels),), labels, dtype=torch.long, device=self.device)
        else:
            chosen = labels if indices is None else labels[np.asarray(indices, dtype=np.int64)]
            self.labels = torch.from_numpy(np.asarray(chosen).astype(np.int64)).to(self.device)
        self.index_loader = DataLoader(
            _Indices(len(self.images)),
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=0,
            drop_last=drop_last,
        )
        self.sampler = self.index_loader.sampler
        self._normalize = None
        if self.recipe.mean_std is not None:
            channels = (self.recipe.target or self.recipe.produced)[0]
            self._normalize = normalize_for(self.recipe.mean_std, channels)

    def __len__(self) -> int:
        return len(self.index_loader)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # iter(DataLoader) draws its base seed at once (not at the first batch); so does this, so that
        # wrappers that create an iterator early (tqdm does) see the same RNG stream on both paths.
        indices = iter(self.index_loader)
        return (self.batch(index) for index in indices)

    def batch(self, index: Tensor | Sequence[int]) -> tuple[Tensor, Tensor]:
        """The transformed items at ``index`` (positions in the wrapped dataset), drawing any random
        augmentation parameters from the global RNG in the per-image path's order."""
        index = torch.as_tensor(index, dtype=torch.long)
        on_device = index.to(self.device, non_blocking=True)
        x = self.images.index_select(0, on_device).float().div_(255)  # ToTensor: float32, divided by 255
        if self.recipe.ops == "flip_and_crop":
            x = flip_and_crop_batch(x, *draw_flip_and_crop(len(index)))
        target = self.recipe.target
        if target is not None:
            x = match_shape_batch(x, target)
        if self._normalize is not None:
            x = self._normalize(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels.index_select(0, on_device)


def draw_flip_and_crop(n: int, padding: int = CROP_PADDING) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image ``(flip, top, left)`` drawn exactly as ``RandomHorizontalFlip()`` then
    ``RandomCrop(size, padding)`` draw them for one image after the other (``torch.rand(1) < 0.5``,
    then two ``torch.randint`` calls): the same global RNG stream as the per-image path."""
    span = 2 * padding + 1  # the crop's top-left corner in the padded image: 0 .. 2·padding (size is kept)
    flips, tops, lefts = [], [], []
    for _ in range(n):
        flips.append(bool(torch.rand(1) < 0.5))
        tops.append(int(torch.randint(0, span, size=(1,)).item()))
        lefts.append(int(torch.randint(0, span, size=(1,)).item()))
    return torch.tensor(flips), torch.tensor(tops), torch.tensor(lefts)


def flip_and_crop_batch(x: Tensor, flip: Tensor, top: Tensor, left: Tensor, padding: int = CROP_PADDING) -> Tensor:
    """Flip the images where ``flip`` is set, pad every side with ``padding`` zeros, then crop each image
    back to its size at its own ``(top, left)``: the batched form of the per-image transforms."""
    b, c, h, w = x.shape
    device = x.device
    flip, top, left = flip.to(device), top.to(device), left.to(device)
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (top.view(b, 1) + torch.arange(h, device=device)).view(b, 1, h, 1)
    cols = (left.view(b, 1) + torch.arange(w, device=device)).view(b, 1, 1, w)
    return padded[
        torch.arange(b, device=device).view(b, 1, 1, 1), torch.arange(c, device=device).view(1, c, 1, 1), rows, cols
    ]


def match_shape_batch(x: Tensor, shape: Sequence[int]) -> Tensor:
    """:func:`~stitchkit.data.transforms.match_shape` for a batch (the same resize and channel rule)."""
    channels, height, width = (int(s) for s in shape)
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return convert_channels(x, channels)
