"""Noise images (uniform, Gaussian): generated, offline."""

from __future__ import annotations

from ...declarations import declare
from .. import synthetic
from ..base import LoadRequest
from ..datasets import ImageDataset


@declare(
    "dataset",
    "noise",
    order=14,
    num_classes=1,
    shape=(3, 32, 32),
    generated=True,
    takes_size=True,
    aliases=("noise_uniform",),
    description="Uniform noise images in [0, 1]; label 1; offline.",
    expected_files="nothing (generated)",
    how_to_get="nothing to install.",
)
def load_uniform_noise(req: LoadRequest) -> ImageDataset:
    shape, size = synthetic.requested(req)
    return synthetic.NoiseImages(req.split, size, shape, "uniform")


@declare(
    "dataset",
    "noise_gaussian",
    order=15,
    num_classes=1,
    shape=(3, 32, 32),
    generated=True,
    takes_size=True,
    description="Gaussian noise images (mean 0.5, std 0.25, clipped to [0, 1]); label 1; offline.",
    expected_files="nothing (generated)",
    how_to_get="nothing to install.",
)
def load_gaussian_noise(req: LoadRequest) -> ImageDataset:
    shape, size = synthetic.requested(req)
    return synthetic.NoiseImages(req.split, size, shape, "gaussian")
