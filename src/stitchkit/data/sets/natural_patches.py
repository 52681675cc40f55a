"""Random crops of the photos bundled with scikit-image and scikit-learn, in colour and in grey: a
stand-in for the 300K random images, offline."""

from __future__ import annotations

from ...declarations import declare
from .. import synthetic
from ..base import LoadRequest
from ..datasets import ImageDataset

PHOTOS = "nothing (photos bundled with scikit-image and scikit-learn)"
HOW = "install scikit-image and pillow (pip install scikit-image pillow)."


@declare(
    "dataset",
    "natural_patches",
    order=12,
    num_classes=1,
    shape=(3, 32, 32),
    generated=True,
    takes_size=True,
    description="Random crops of the photos bundled with scikit-image and scikit-learn, a stand-in for the 300K "
    "random images; label 1; 50,000 train / 10,000 test by default; offline.",
    expected_files=PHOTOS,
    how_to_get=HOW,
    train_transform="flip_and_crop",
)
@declare(
    "dataset",
    "natural_patches_gray",
    order=13,
    num_classes=1,
    shape=(1, 28, 28),
    generated=True,
    takes_size=True,
    description="natural_patches in grey at 28×28, to pair with MNIST-like sets; offline.",
    expected_files=PHOTOS,
    how_to_get=HOW,
    train_transform="flip_and_crop",
)
def load_natural_patches(req: LoadRequest) -> ImageDataset:
    shape, size = synthetic.requested(req)
    return synthetic.NaturalPatches(req.split, size, shape)
