"""Default train and eval transforms of the registered datasets (seed spec section 3).

Each factory returns the *geometric* steps only. They work on PIL images and on tensors alike;
:func:`stitchkit.data.get_dataset` appends ``ToTensor`` for datasets that yield PIL images, then
:class:`MatchShape` when another shape was requested, then ``Normalize`` for ImageNet. So every item
ends as a ``C×H×W`` float tensor in [0, 1] (ImageNet: normalised).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import StitchkitError

Shape = tuple[int, int, int]
OpsFactory = Callable[[Shape], list]


def _T():
    """torchvision.transforms, imported on first use (the import takes seconds; see DeferredTransform)."""
    from torchvision import transforms  # deferred: torchvision loads only when a transform is built

    return transforms


def to_tensor() -> Callable:
    return _T().ToTensor()


class DeferredTransform:
    """A transform built by ``build()`` on its first call (then kept), so that making a dataset does not
    import torchvision; ``build`` may return None (the identity). Picklable when ``build`` is."""

    def __init__(self, build: Callable[[], Callable | None]):
        self.build = build
        self._transform: Callable | None = None
        self._built = False

    def __call__(self, x):
        if not self._built:
            self._transform, self._built = self.build(), True
        return x if self._transform is None else self._transform(x)

    def __getstate__(self) -> dict:
        return {"build": self.build}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["build"])

    def __repr__(self) -> str:
        return f"DeferredTransform({self._transform!r})" if self._built else "DeferredTransform(<not built yet>)"


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ITU-R 601-2 luma weights, the ones PIL's convert("L") uses.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def no_ops(shape: Shape) -> list:
    """Plain ``ToTensor`` (the eval transform of most sets, and CIFAR-5M's train transform)."""
    return []


def flip_and_crop(shape: Shape) -> list:
    """RandomHorizontalFlip, RandomCrop(size, padding 4): CIFAR-10/100, Fashion-MNIST, outlier exposure."""
    return [_T().RandomHorizontalFlip(), _T().RandomCrop(shape[1:], padding=4)]


def affine_jitter(shape: Shape) -> list:
    """Pad 4 (edge), RandomAffine(±5°, scale 0.9–1.1, shear 5, fill 0), CenterCrop: MNIST and SVHN."""
    return [
        _T().Pad(4, padding_mode="edge"),
        _T().RandomAffine(degrees=5, scale=(0.9, 1.1), shear=5, fill=0),
        _T().CenterCrop(shape[1:]),
    ]


def large_cifar_train(shape: Shape) -> list:
    """Resize to 224×224, RandomRotation 15, RandomCrop 224 (a no-op kept for fidelity), flip."""
    return [_T().Resize(shape[1:]), _T().RandomRotation(15), _T().RandomCrop(shape[1:]), _T().RandomHorizontalFlip()]


def large_cifar_eval(shape: Shape) -> list:
    """Resize to 224×224. The original resized CIFAR-100's eval images to 244×244 (a typo that gave
    inputs of the wrong size); we use 224 for both CIFAR-10 and CIFAR-100."""
    return [_T().Resize(shape[1:])]


def imagenet_train(shape: Shape) -> list:
    """RandomResizedCrop 224, RandomHorizontalFlip (Normalize is appended by ``get_dataset``)."""
    return [_T().RandomResizedCrop(shape[1:]), _T().RandomHorizontalFlip()]


def imagenet_eval(shape: Shape) -> list:
    """Resize 256 (shorter side), CenterCrop 224 (Normalize is appended by ``get_dataset``)."""
    return [_T().Resize(round(shape[1] * 256 / 224)), _T().CenterCrop(shape[1:])]


class MatchShape:
    """Convert a ``C×H×W`` tensor to another channel count and size.

    Channels: 3 → 1 by the ITU-R 601-2 luma weights (as PIL's greyscale conversion), 1 → 3 by
    repetition. Size: bilinear resampling with antialiasing, which keeps values inside their
    original range. A tensor that already has the shape passes unchanged.
    """

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(int(s) for s in shape)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return match_shape(image, self.shape)

    def __repr__(self) -> str:
        return f"MatchShape({self.shape})"


def match_shape(image: torch.Tensor, shape: Shape) -> torch.Tensor:
    channels, height, width = shape
    if image.dim() != 3:
        raise StitchkitError(f"expected a C×H×W image tensor, got shape {tuple(image.shape)}")
    if image.shape[1:] != (height, width):
        image = F.interpolate(
            image[None].float(), size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )[0]
    if image.shape[0] != channels:
        image = convert_channels(image, channels)
    return image


def convert_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    have = image.shape[-3]
    if have == channels:
        return image
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=image.dtype, device=image.device).view(3, 1, 1)
        return (image * weights).sum(dim=-3, keepdim=True)
    if have == 1 and channels == 3:
        return image.expand(*image.shape[:-3], 3, *image.shape[-2:]).clone()
    raise StitchkitError(f"cannot convert images with {have} channels to {channels}; only 1 <-> 3 is supported")


def normalize_for(mean_std: tuple[tuple[float, ...], tuple[float, ...]], channels: int) -> Callable:
    """``Normalize`` with the dataset's statistics; for one channel, the luma-weighted statistics."""
    mean, std = mean_std
    if channels != len(mean):
        if channels != 1 or len(mean) != 3:
            raise StitchkitError(f"cannot normalise {channels}-channel images with {len(mean)}-channel statistics")
        mean = (sum(w * m for w, m in zip(LUMA_WEIGHTS, mean)),)
        std = (sum(w * s for w, s in zip(LUMA_WEIGHTS, std)),)
    return _T().Normalize(mean, std)


def compose(steps: list) -> Callable:
    return steps[0] if len(steps) == 1 else _T().Compose(steps)
