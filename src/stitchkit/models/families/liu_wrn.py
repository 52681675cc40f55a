"""The WRN-40-2 of Liu et al. 2020 (energy-based OOD detection), input normalised inside."""

from __future__ import annotations

import torch.nn as nn

from ...declarations import declare
from ..liu_wrn import LIU_MEAN, LIU_STD, LiuWideResNet


@declare(
    "model_family",
    "liu_wrn",
    order=4,
    title="Liu et al. wide ResNet",
    options={
        "width_factor": {
            "default": 2,
            "kind": "int",
            "help": "width factor k: channels 16, 16k, 32k, 64k",
            "minimum": 1,
        },
        "drop_rate": {
            "default": 0.0,
            "kind": "float",
            "help": "dropout between the convolutions of a block",
            "minimum": 0.0,
            "maximum": 1.0,
        },
        "input_mean": {
            "default": None,
            "kind": "floats",
            "help": "per-channel input mean (None: Liu et al.'s CIFAR statistics)",
            "nullable": True,
        },
        "input_std": {
            "default": None,
            "kind": "floats",
            "help": "per-channel input std (None: Liu et al.'s CIFAR statistics)",
            "nullable": True,
        },
    },
    members={"liu2020_wrn": {"description": "WRN-40-2 of Liu et al. 2020 (energy OOD), input normalised inside"}},
)
def build_liu_wrn(num_classes, in_channels, input_size, *, width_factor, drop_rate, input_mean, input_std) -> nn.Module:
    return LiuWideResNet(
        40,
        width_factor,
        num_classes,
        in_channels,
        drop_rate=drop_rate,
        input_mean=input_mean or LIU_MEAN,
        input_std=input_std or LIU_STD,
    )
