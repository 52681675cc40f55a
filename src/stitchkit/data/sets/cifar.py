"""CIFAR-10 and CIFAR-100 (torchvision's layout), at 32×32 and resized to 224×224."""

from __future__ import annotations

from ...declarations import declare
from .. import sources
from ..base import LoadRequest
from ..datasets import ImageDataset
from ..sources import TORCHVISION_DOWNLOAD

CIFAR10_FILES = "cifar-10-batches-py/data_batch_1..5, test_batch and batches.meta (torchvision's CIFAR-10 layout)"
CIFAR100_FILES = "cifar-100-python/train, test and meta (torchvision's CIFAR-100 layout)"
CIFAR10_HOW = (
    "unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into {root}, "
    + TORCHVISION_DOWNLOAD
    + "."
)
CIFAR100_HOW = (
    "unpack cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into {root}, "
    + TORCHVISION_DOWNLOAD
    + "."
)


@declare(
    "dataset",
    "cifar10",
    order=3,
    num_classes=10,
    shape=(3, 32, 32),
    description="CIFAR-10 at 32×32, no normalisation.",
    expected_files=CIFAR10_FILES,
    how_to_get=CIFAR10_HOW,
    train_transform="flip_and_crop",
)
@declare(
    "dataset",
    "cifar10_large",
    order=5,
    num_classes=10,
    shape=(3, 224, 224),
    description="CIFAR-10 resized to 224×224 (for ImageNet-style models).",
    expected_files=CIFAR10_FILES,
    how_to_get=CIFAR10_HOW,
    train_transform="large_cifar_train",
    eval_transform="large_cifar_eval",
)
def load_cifar10(req: LoadRequest) -> ImageDataset:
    return sources.load_cifar10(req)


# The original's eval transform resized CIFAR-100 to 244×244 (a typo); we use 224×224.
@declare(
    "dataset",
    "cifar100",
    order=4,
    num_classes=100,
    shape=(3, 32, 32),
    description="CIFAR-100 (fine labels) at 32×32, no normalisation.",
    expected_files=CIFAR100_FILES,
    how_to_get=CIFAR100_HOW,
    train_transform="flip_and_crop",
)
@declare(
    "dataset",
    "cifar100_large",
    order=6,
    num_classes=100,
    shape=(3, 224, 224),
    description="CIFAR-100 resized to 224×224 (the original's 244 typo fixed).",
    expected_files=CIFAR100_FILES,
    how_to_get=CIFAR100_HOW,
    train_transform="large_cifar_train",
    eval_transform="large_cifar_eval",
)
def load_cifar100(req: LoadRequest) -> ImageDataset:
    return sources.load_cifar100(req)
