"""scikit-learn's handwritten digits, upsampled to 28×28: a small MNIST-like set, offline."""

from __future__ import annotations

from ...declarations import declare
from .. import synthetic
from ..base import LoadRequest
from ..datasets import ImageDataset


@declare(
    "dataset",
    "digits",
    order=11,
    num_classes=10,
    shape=(1, 28, 28),
    generated=True,
    description="scikit-learn's 1,797 handwritten digits (8×8) upsampled to 28×28; 80% train / 20% test; offline.",
    expected_files="nothing (bundled with scikit-learn)",
    how_to_get="install scikit-learn.",
    train_transform="affine_jitter",
)
def load_digits(req: LoadRequest) -> ImageDataset:
    shape, _ = synthetic.requested(req)
    return synthetic.load_digits_split(req.split, shape)
