"""DeepMind-style pre-activation ResNets (Swish, input normalised inside)."""

from __future__ import annotations

import torch.nn as nn

from ...declarations import declare
from ..options import ACTIVATION, STAGE_WIDTH
from ..preact_resnet import CIFAR10_MEAN, CIFAR10_STD, PreActResNet

#: the input normalisation of the DeepMind-style networks
CIFAR10_NORM = {
    "input_mean": {
        "default": None,
        "kind": "floats",
        "help": "per-channel input mean (None: CIFAR-10 statistics)",
        "nullable": True,
    },
    "input_std": {
        "default": None,
        "kind": "floats",
        "help": "per-channel input std (None: CIFAR-10 statistics)",
        "nullable": True,
    },
}


@declare(
    "model_family",
    "preact_resnet",
    order=2,
    title="pre-activation ResNets",
    options=(STAGE_WIDTH, ACTIVATION, CIFAR10_NORM),
    description="DeepMind-style pre-activation ResNet-{depth} (Swish, input normalised inside)",
    members={"preact_resnet18": {"args": {"depth": 18}}, "preact_resnet34": {"args": {"depth": 34}}},
)
def build_preact_resnet(
    num_classes, in_channels, input_size, *, depth, width, activation, input_mean, input_std
) -> nn.Module:
    return PreActResNet(
        depth,
        num_classes,
        in_channels,
        width=width,
        activation=activation,
        input_mean=input_mean or CIFAR10_MEAN,
        input_std=input_std or CIFAR10_STD,
    )
