"""Offline datasets that need no download: usable in tests, demos and air-gapped machines.

* ``digits``: scikit-learn's 1,797 handwritten digits (8×8, 17 grey levels), upsampled bilinearly.
  A small MNIST-like set, e.g. as an OOD sanity set next to MNIST/Fashion-MNIST (the way SVHN serves
  CIFAR).
* ``natural_patches``: random crops of the sample photographs bundled with scikit-image and
  scikit-learn, a stand-in for the 300K random images (outlier exposure).
* ``noise``: uniform or Gaussian noise images.

Every item is a pure function of (dataset, split, index): patch and noise items are generated
lazily from a random generator seeded by that triple, so the same index always gives the same
tensor, in any process and DataLoader worker, without storing anything.

All of them are built directly at the requested shape (``get_dataset(..., shape=(C, H, W))``), so
an OOD set can match the in-distribution set's channels and size without resampling twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import StitchkitError
from .base import LoadRequest
from .datasets import ImageDataset, TensorImageDataset
from .transforms import convert_channels, match_shape

Shape = tuple[int, int, int]

_SPLIT_CODE = {"train": 0, "test": 1}

# Fixed seeds: the offline sets are data, not experiments, so they never change with the run seed.
DIGITS_SPLIT_SEED = 20250301
PATCHES_SEED = 300_000
NOISE_SEED = 7

DIGITS_TRAIN_FRACTION = 0.8

#: items of a generated set whose length is chosen (``size=``) when none is asked for
DEFAULT_GENERATED_SIZES = {"train": 50_000, "test": 10_000}


def requested(req: LoadRequest) -> tuple[Shape, int]:
    """The item shape and the number of items a load request asks a generated set for."""
    shape = req.shape or req.info.shape
    return shape, req.size if req.size is not None else DEFAULT_GENERATED_SIZES[req.split]


@functools.lru_cache(maxsize=4)
def _digits_arrays(shape: Shape) -> tuple[torch.Tensor, np.ndarray]:
    from sklearn.datasets import load_digits  # deferred: scikit-learn loads only for the digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    images = F.interpolate(images, size=shape[1:], mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    return convert_channels(images, shape[0]).contiguous(), bunch.target.astype(np.int64)


def load_digits_split(split: str, shape: Shape, transform: Callable | None = None) -> TensorImageDataset:
    """scikit-learn's digits: values 0..16 scaled to [0, 1], upsampled bilinearly from 8×8 to the
    requested size (default 28×28), repeated to 3 channels when asked. A seeded permutation puts 80%
    (1,438 images) in ``train`` and the rest (359) in ``test``."""
    images, labels = _digits_arrays(tuple(shape))
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    n_train = int(round(DIGITS_TRAIN_FRACTION * len(labels)))
    chosen = np.sort(order[:n_train] if split == "train" else order[n_train:])
    return TensorImageDataset(images[torch.from_numpy(chosen)], labels[chosen], transform)


class GeneratedImageDataset(ImageDataset):
    """``size`` items of ``shape``; item ``i`` comes from a generator seeded by (seed, split, i)."""

    yields_pil = False
    seed: int = 0

    def __init__(self, split: str, size: int, shape: Shape, label: int = 1, transform: Callable | None = None):
        super().__init__(transform)
        self.split = split
        self.size = int(size)
        self.shape = tuple(shape)
        self.label = label

    def __len__(self) -> int:
        return self.size

    def load_raw(self, index: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, _SPLIT_CODE[self.split], index])
        return self.generate(rng), self.label

    def generate(self, rng: np.random.Generator) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class NoiseImages(GeneratedImageDataset):
    """Uniform noise in [0, 1] (``kind="uniform"``) or Gaussian noise with mean 0.5 and standard
    deviation 0.25, clipped to [0, 1] (``kind="gaussian"``). Every pixel and channel independent."""

    seed = NOISE_SEED

    def __init__(self, split: str, size: int, shape: Shape, kind: str = "uniform", transform: Callable | None = None):
        super().__init__(split, size, shape, transform=transform)
        if kind not in ("uniform", "gaussian"):
            raise StitchkitError(f"unknown noise kind {kind!r}; use 'uniform' or 'gaussian'")
        self.kind = kind

    def generate(self, rng: np.random.Generator) -> torch.Tensor:
        if self.kind == "uniform":
            pixels = rng.random(self.shape, dtype=np.float32)
        else:
            pixels = np.clip(rng.normal(0.5, 0.25, self.shape), 0.0, 1.0).astype(np.float32)
        return torch.from_numpy(pixels)


# Sample photographs that ship inside the scikit-image and scikit-learn wheels (no download).
# Textures (grass, gravel, brick) and grey photos add variety; grey ones are repeated to 3 channels.
SKIMAGE_PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "camera", "coins", "moon", "grass", "gravel", "brick", "clock",
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def sample_photos() -> tuple[np.ndarray, ...]:
    """The bundled photos as ``H×W×3`` uint8 arrays (loaded once per process)."""
    photos = []
    try:
        from sklearn.datasets import load_sample_images  # deferred: scikit-learn loads only for the sample photos

        photos.extend(np.asarray(image, dtype=np.uint8) for image in load_sample_images().images)
    except Exception:  # pillow missing or a trimmed install: use whatever else is there
        pass
    try:
        import skimage.data  # deferred: scikit-image is optional (more photos when installed)
    except ImportError:
        skimage = None
    if skimage is not None:
        for name in SKIMAGE_PHOTOS:
            try:
                image = np.asarray(getattr(skimage.data, name)())
            except Exception:  # not bundled in this scikit-image version
                continue
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=2)
            photos.append(np.ascontiguousarray(image[..., :3].astype(np.uint8)))
    if not photos:
        raise StitchkitError(
            "the natural_patches dataset needs the sample photos bundled with scikit-image or scikit-learn, "
            "and none could be loaded; install them with `pip install scikit-image pillow`"
        )
    return tuple(photos)


class NaturalPatches(GeneratedImageDataset):
    """Random square crops of the bundled photos, resized to the requested shape.

    For each index: pick a photo uniformly, draw the crop side log-uniformly between the output size
    and half the photo's shorter side (from fine textures to object parts), a uniform position, and
    horizontal and vertical flips with probability 1/2 each; resize with antialiasing and convert to
    the requested channels (luma for grey). The label is 1, as for outlier exposure. Train and test
    draw different crops of the same photos.
    """

    seed = PATCHES_SEED

    def __init__(self, split: str, size: int, shape: Shape, transform: Callable | None = None):
        super().__init__(split, size, shape, transform=transform)
        self.photos = sample_photos()

    def __getstate__(self) -> dict:  # workers reload the bundled photos instead of receiving copies
        return {**self.__dict__, "photos": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.photos = sample_photos()

    def generate(self, rng: np.random.Generator) -> torch.Tensor:
        photo = self.photos[int(rng.integers(len(self.photos)))]
        height, width = photo.shape[:2]
        shorter = min(height, width)
        low = min(shorter, max(self.shape[1:]))
        high = max(low, shorter // 2)
        side = int(round(np.exp(rng.uniform(np.log(low), np.log(high)))))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crop = photo[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        image = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div_(255.0)
        return match_shape(image, self.shape).clamp_(0.0, 1.0)
