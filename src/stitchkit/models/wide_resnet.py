"""DeepMind-style wide ResNets ``wide_resnet_28_10`` and ``wide_resnet_34_10`` (Zagoruyko & Komodakis
2016, as ported by DeepMind for adversarial robustness; spec §2.2).

WRN-d-k: ``(d - 4) / 6`` pre-activation blocks per stage, channels ``16, 16k, 32k, 64k`` (16/160/320/640
for k = 10), strides 1/2/2, Swish by default, input normalised inside with CIFAR-10 statistics.
Modules: ``normalize``, ``init_conv``, ``layer.{0,1,2}.block.{i}``, ``batchnorm``, ``relu``, ``logits``.
The head pools globally (the original's ``avg_pool2d(8)`` only fits 32×32 inputs).

Stitchable: every block, ``layer.{g}.block.{i}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import StitchkitError
from .preact_resnet import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DM_BN_MOMENTUM,
    DM_WRN_NAMES,
    BlockGroup,
    InputNormalize,
    make_activation,
    make_preact_stage,
)
from .resnet_cifar import init_conv_bn_


def wrn_blocks_per_stage(depth: int) -> int:
    if depth < 10 or (depth - 4) % 6:
        raise StitchkitError(f"wide ResNet depth must be 6n+4 with n ≥ 1 (10, 16, 22, 28, 34, 40, …), got {depth}")
    return (depth - 4) // 6


def wrn_channels(width_factor: int) -> tuple[int, int, int, int]:
    return (16, 16 * width_factor, 32 * width_factor, 64 * width_factor)


class DMWideResNet(nn.Module):
    def __init__(
        self,
        depth: int = 28,
        width_factor: int = 10,
        num_classes: int = 10,
        in_channels: int = 3,
        activation: str = "swish",
        input_mean: Sequence[float] = CIFAR10_MEAN,
        input_std: Sequence[float] = CIFAR10_STD,
    ):
        super().__init__()
        n = wrn_blocks_per_stage(depth)
        ch = wrn_channels(width_factor)
        self.normalize = InputNormalize(input_mean, input_std, in_channels)
        self.init_conv = nn.Conv2d(in_channels, ch[0], 3, stride=1, padding=1, bias=False)
        self.layer = nn.Sequential(
            *(
                BlockGroup(
                    make_preact_stage(
                        n,
                        ch[g],
                        ch[g + 1],
                        stride,
                        activation=activation,
                        padding="same",
                        names=DM_WRN_NAMES,
                        bn_momentum=DM_BN_MOMENTUM,
                    ),
                    attr="block",
                )
                for g, stride in enumerate((1, 2, 2))
            )
        )
        self.batchnorm = nn.BatchNorm2d(ch[3], momentum=DM_BN_MOMENTUM)
        self.relu = make_activation(activation)
        self.logits = nn.Linear(ch[3], num_classes)
        self.num_features = ch[3]
        self.stitchable_layers: tuple[str, ...] = tuple(f"layer.{g}.block.{i}" for g in range(3) for i in range(n))
        init_conv_bn_(self)
        nn.init.zeros_(self.logits.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(self.init_conv(self.normalize(x)))
        x = F.adaptive_avg_pool2d(self.relu(self.batchnorm(x)), 1)
        return self.logits(torch.flatten(x, 1))
