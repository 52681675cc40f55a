"""CIFAR-5M: about 6M synthetic CIFAR-10-like images, memory-mapped; its test split is CIFAR-10's."""

from __future__ import annotations

from ...declarations import declare
from .. import sources
from ..base import LoadRequest
from ..datasets import ImageDataset


@declare(
    "dataset",
    "cifar5m",
    order=7,
    num_classes=10,
    shape=(3, 32, 32),
    epoch_size=50_000,
    description="CIFAR-5M (about 6M synthetic CIFAR-10-like images), memory-mapped; the test split is CIFAR-10's test "
    "set; training samples 50,000 fresh images per epoch.",
    expected_files="cifar5m/cifar5m_part0.npz … cifar5m_part5.npz (arrays X: N×32×32×3 uint8, Y: N labels), "
    "and cifar-10-batches-py/test_batch for the test split",
    how_to_get="CIFAR-5M cannot be downloaded automatically; get cifar5m_part0.npz … cifar5m_part5.npz from "
    "https://github.com/preetum/cifar5m and place them in {root}/cifar5m (the test split uses CIFAR-10, "
    "which torchvision can download).",
)
def load_cifar5m(req: LoadRequest) -> ImageDataset:
    return sources.load_cifar5m(req)
