"""torchvision's ResNets (ImageNet-style stem), by the zoo's names."""

from __future__ import annotations

import torch.nn as nn

from ...declarations import declare
from .. import external
from ..options import EXTERNAL


@declare(
    "model_family",
    "tv_resnet",
    order=9,
    title="torchvision ResNets",
    options=EXTERNAL,
    input_size=(224, 224),
    own=False,
    members={
        "tv_resnet18": {"args": {"tv_name": "resnet18"}, "description": "torchvision ResNet-18 (ImageNet-style stem)"},
        "tv_resnet34": {"args": {"tv_name": "resnet34"}, "description": "torchvision ResNet-34 (ImageNet-style stem)"},
        "tv_resnet50": {"args": {"tv_name": "resnet50"}, "description": "torchvision ResNet-50 (ImageNet-style stem)"},
        "tv_resnet101": {
            "args": {"tv_name": "resnet101"},
            "description": "torchvision ResNet-101 (ImageNet-style stem)",
        },
        "tv_resnet152": {
            "args": {"tv_name": "resnet152"},
            "description": "torchvision ResNet-152 (ImageNet-style stem)",
        },
    },
)
def build_tv_resnet(num_classes, in_channels, input_size, *, tv_name, pretrained, weights, kwargs) -> nn.Module:
    return external.build_torchvision(
        tv_name, num_classes, in_channels, pretrained=pretrained, weights=weights, kwargs=kwargs
    )
