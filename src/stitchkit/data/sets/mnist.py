"""MNIST and Fashion-MNIST: 28×28 grey images read from IDX files (torchvision's layout, plain or .gz)."""

from __future__ import annotations

from ...declarations import declare
from .. import sources
from ..base import LoadRequest
from ..datasets import ImageDataset
from ..sources import TORCHVISION_DOWNLOAD


@declare(
    "dataset",
    "mnist",
    order=1,
    num_classes=10,
    shape=(1, 28, 28),
    description="MNIST handwritten digits (60,000 train / 10,000 test).",
    expected_files="MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, plain or .gz (torchvision's layout)",
    how_to_get="copy the four IDX files into {root}/MNIST/raw, " + TORCHVISION_DOWNLOAD + ".",
    train_transform="affine_jitter",
)
def load_mnist(req: LoadRequest) -> ImageDataset:
    return sources.load_mnist(req)


@declare(
    "dataset",
    "fashion",
    order=2,
    num_classes=10,
    shape=(1, 28, 28),
    aliases=("fashion-mnist", "fashion_mnist"),
    description="Fashion-MNIST clothing images (60,000 train / 10,000 test).",
    expected_files="FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, plain or .gz (torchvision's "
    "layout), or the same .gz files in /usr/share/datasets/fashion-mnist",
    how_to_get="install Debian's package (apt-get install dataset-fashion-mnist, which puts the files in "
    "/usr/share/datasets/fashion-mnist), copy the four IDX files into {root}/FashionMNIST/raw, "
    + TORCHVISION_DOWNLOAD
    + ".",
    train_transform="flip_and_crop",
)
def load_fashion(req: LoadRequest) -> ImageDataset:
    return sources.load_fashion(req)
