"""Dataset classes over arrays (in RAM or memory-mapped), image folders and lists of image files.

All of them yield ``(transform(image), label)``; ``get_dataset`` sets the transform. Datasets over
files yield PIL images to the transform (like torchvision's, so torchvision transforms behave the
same); the generated sets in :mod:`stitchkit.data.synthetic` yield tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .image_files import read_image


class ImageDataset(Dataset):
    """Base class: subclasses implement ``__len__`` and ``load_raw(index) -> (image, label)``."""

    #: True when ``load_raw`` returns PIL images (``get_dataset`` then appends ``ToTensor``).
    yields_pil: bool = True

    def __init__(self, transform: Callable | None = None, classes: Sequence[str] | None = None):
        self.transform = transform
        self.classes = list(classes) if classes is not None else None

    def load_raw(self, index: int) -> tuple[Any, int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_index(self, index: int) -> int:
        index = int(index)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} is out of range for a dataset of {n} items")
        return index

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.load_raw(self._check_index(index))
        if self.transform is not None:
            image = self.transform(image)
        return image, label


class ConcatArrays:
    """Several arrays (e.g. memory-mapped CIFAR-5M parts) seen as one along the first axis, by index
    arithmetic; nothing is copied."""

    def __init__(self, arrays: Sequence[Any]):
        self.arrays = list(arrays)
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.arrays[part][index - int(self.offsets[part])]


class ArrayImageDataset(ImageDataset):
    """Images from an ``N×H×W`` (grey) or ``N×H×W×C`` uint8 array-like; labels from an array-like
    or one constant label for every item (unlabelled outlier sets)."""

    def __init__(self, images, labels, transform: Callable | None = None, classes: Sequence[str] | None = None):
        super().__init__(transform, classes)
        self.images = images
        self.labels = labels
        if not isinstance(labels, int) and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def load_raw(self, index: int) -> tuple[Image.Image, int]:
        pixels = np.asarray(self.images[index])
        if pixels.ndim == 3 and pixels.shape[-1] == 1:
            pixels = pixels[..., 0]
        label = self.labels if isinstance(self.labels, int) else int(np.asarray(self.labels[index]).item())
        return Image.fromarray(pixels), label


class FolderImageDataset(ImageDataset):
    """A torchvision ``ImageFolder`` (class index = sorted folder name) under our transform."""

    def __init__(self, folder, transform: Callable | None = None):
        super().__init__(transform, folder.classes)
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def load_raw(self, index: int) -> tuple[Image.Image, int]:
        return self.folder[index]


class FileImageDataset(ImageDataset):
    """Image files with their labels, each read in ``mode`` (``"L"`` or ``"RGB"``) when indexed
    (:func:`~stitchkit.data.image_files.read_image`: 16-bit images scaled, damaged files named)."""

    def __init__(
        self,
        files: Sequence[str],
        labels,
        mode: str,
        transform: Callable | None = None,
        classes: Sequence[str] | None = None,
    ):
        super().__init__(transform, classes)
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files = list(files)
        self.labels = labels
        self.mode = mode

    def __len__(self) -> int:
        return len(self.files)

    def load_raw(self, index: int) -> tuple[Image.Image, int]:
        return read_image(self.files[index], self.mode), int(self.labels[index])


class TensorImageDataset(ImageDataset):
    """Images from a float tensor ``N×C×H×W`` already in [0, 1]."""

    yields_pil = False

    def __init__(self, images: torch.Tensor, labels, transform: Callable | None = None):
        super().__init__(transform)
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def load_raw(self, index: int) -> tuple[torch.Tensor, int]:
        label = self.labels if isinstance(self.labels, int) else int(self.labels[index])
        return self.images[index].clone(), label
