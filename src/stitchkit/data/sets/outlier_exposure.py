"""The 300K random images of Hendrycks et al.'s outlier exposure, memory-mapped."""

from __future__ import annotations

from ...declarations import declare
from .. import sources
from ..base import LoadRequest
from ..datasets import ImageDataset


@declare(
    "dataset",
    "outlier_exposure",
    order=10,
    num_classes=1,
    shape=(3, 32, 32),
    has_test_split=False,
    aliases=("oe",),
    description="The 300K random images of Hendrycks et al.'s outlier exposure, memory-mapped; every label is 1; "
    "the test split is the same images without augmentation.",
    expected_files="oe/300K_random_images.npy (300,000×32×32×3 uint8, NHWC)",
    how_to_get="download 300K_random_images.npy (linked from https://github.com/hendrycks/outlier-exposure) and place "
    "it in {root}/oe; offline, the natural_patches dataset is a stand-in.",
    train_transform="flip_and_crop",
)
def load_outlier_exposure(req: LoadRequest) -> ImageDataset:
    return sources.load_outlier_exposure(req)
