"""``liu2020_wrn``: the WRN-40-2 of Liu et al. 2020 ("Energy-based out-of-distribution detection"),
originally from Hendrycks' outlier-exposure code (spec §2.2).

Channels 16/32/64/128 (``16, 16k, 32k, 64k`` with width factor k = 2), 6 pre-activation ReLU blocks
per stage, symmetric padding, dropout 0, input normalised inside with the constants of that code
(mean 125.3/123.0/113.9 / 255, std 63.0/62.1/66.7 / 255). Modules: ``normalize``, ``conv1``,
``block{1,2,3}.layer.{i}``, ``bn1``, ``relu``, ``fc``. Unlike the original, the stem takes
``in_channels`` (it was hard-coded to 3) and the head pools globally (not ``avg_pool2d(8)``).

Stitchable: every block, ``block{g}.layer.{i}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .preact_resnet import LIU_WRN_NAMES, BlockGroup, InputNormalize, make_preact_stage
from .resnet_cifar import init_conv_bn_
from .wide_resnet import wrn_blocks_per_stage, wrn_channels

LIU_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
LIU_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)


class LiuWideResNet(nn.Module):
    def __init__(
        self,
        depth: int = 40,
        width_factor: int = 2,
        num_classes: int = 10,
        in_channels: int = 3,
        drop_rate: float = 0.0,
        input_mean: Sequence[float] = LIU_MEAN,
        input_std: Sequence[float] = LIU_STD,
    ):
        super().__init__()
        n = wrn_blocks_per_stage(depth)
        ch = wrn_channels(width_factor)
        self.normalize = InputNormalize(input_mean, input_std, in_channels)
        self.conv1 = nn.Conv2d(in_channels, ch[0], 3, stride=1, padding=1, bias=False)
        for g, stride in enumerate((1, 2, 2)):
            blocks = make_preact_stage(
                n,
                ch[g],
                ch[g + 1],
                stride,
                activation="relu",
                padding="symmetric",
                names=LIU_WRN_NAMES,
                drop_rate=drop_rate,
            )
            setattr(self, f"block{g + 1}", BlockGroup(blocks, attr="layer"))
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(ch[3], num_classes)
        self.num_features = ch[3]
        self.stitchable_layers: tuple[str, ...] = tuple(f"block{g}.layer.{i}" for g in (1, 2, 3) for i in range(n))
        init_conv_bn_(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.normalize(x))
        x = self.block3(self.block2(self.block1(x)))
        x = F.adaptive_avg_pool2d(self.relu(self.bn1(x)), 1)
        return self.fc(torch.flatten(x, 1))
