"""DeepMind-style wide ResNets WRN-28-10 and WRN-34-10 (Swish, input normalised inside)."""

from __future__ import annotations

import torch.nn as nn

from ...declarations import declare
from ..options import ACTIVATION
from ..preact_resnet import CIFAR10_MEAN, CIFAR10_STD
from ..wide_resnet import DMWideResNet
from .preact_resnet import CIFAR10_NORM

WIDTH_FACTOR = {
    "width_factor": {"default": 10, "kind": "int", "help": "width factor k: channels 16, 16k, 32k, 64k", "minimum": 1}
}


@declare(
    "model_family",
    "dm_wide_resnet",
    order=3,
    title="DeepMind wide ResNets",
    options=(WIDTH_FACTOR, ACTIVATION, CIFAR10_NORM),
    description="DeepMind-style WRN-{depth}-10 (Swish, input normalised inside)",
    members={"wide_resnet_28_10": {"args": {"depth": 28}}, "wide_resnet_34_10": {"args": {"depth": 34}}},
)
def build_dm_wide_resnet(
    num_classes, in_channels, input_size, *, depth, width_factor, activation, input_mean, input_std
) -> nn.Module:
    return DMWideResNet(
        depth,
        width_factor,
        num_classes,
        in_channels,
        activation=activation,
        input_mean=input_mean or CIFAR10_MEAN,
        input_std=input_std or CIFAR10_STD,
    )
