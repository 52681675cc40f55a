"""Representation classifiers on convolutional activations: the activation resized to the input size, then a
CIFAR ResNet."""

from __future__ import annotations

import torch.nn as nn

from ...declarations import declare
from ..options import STAGE_WIDTH
from ..repr_cls import ReprClsResNet


@declare(
    "model_family",
    "repr_cls_resnet",
    order=7,
    title="representation classifiers on conv activations",
    options=STAGE_WIDTH,
    description="representation classifier: activation (C, h, w) resized to input_size, then CIFAR ResNet-{depth}; "
    "in_channels = C",
    members={
        "repr_cls_resnet18": {"args": {"depth": 18}},
        "repr_cls_resnet34": {"args": {"depth": 34}},
        "repr_cls_resnet50": {"args": {"depth": 50}},
        "repr_cls_resnet101": {"args": {"depth": 101}},
        "repr_cls_resnet152": {"args": {"depth": 152}},
    },
)
def build_repr_cls_resnet(num_classes, in_channels, input_size, *, depth, width) -> nn.Module:
    return ReprClsResNet(depth, num_classes, in_channels, input_size, width=width)
