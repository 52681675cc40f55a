"""SVHN house-number digits (torchvision's layout; the 'extra' split is unused)."""

from __future__ import annotations

from ...declarations import declare
from .. import sources
from ..base import LoadRequest
from ..datasets import ImageDataset
from ..sources import TORCHVISION_DOWNLOAD


@declare(
    "dataset",
    "svhn",
    order=8,
    num_classes=10,
    shape=(3, 32, 32),
    description="SVHN house-number digits (73,257 train / 26,032 test); 'extra' unused.",
    expected_files="train_32x32.mat and test_32x32.mat directly in the data root (torchvision's layout)",
    how_to_get="download train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ into {root}, "
    + TORCHVISION_DOWNLOAD
    + ".",
    train_transform="affine_jitter",
)
def load_svhn(req: LoadRequest) -> ImageDataset:
    return sources.load_svhn(req)
