"""A small CNN: four 3×3 convolutions with ReLU and max-pooling, global average pooling, FC."""

from __future__ import annotations

import torch.nn as nn

from ...declarations import declare
from ..small_cnn import SmallCNN


@declare(
    "model_family",
    "small_cnn",
    order=5,
    title="small CNN",
    options={
        "width": {
            "default": 16,
            "kind": "int",
            "help": "channels of conv1; conv2..4 have 2, 4, 8 times as many",
            "minimum": 1,
        }
    },
    members={
        "small_cnn": {"description": "four 3×3 convolutions with ReLU and max-pooling, global average pooling, FC"}
    },
)
def build_small_cnn(num_classes, in_channels, input_size, *, width) -> nn.Module:
    return SmallCNN(num_classes, in_channels, width=width)
