"""``small_cnn``: a four-convolution network (spec §2.2).

``input_bn`` (BatchNorm2d over the input channels; the original hard-coded 3), then
``conv1`` 3×3 → ReLU → max-pool 2 → ``conv2`` → ReLU → pool → ``conv3`` → ReLU → pool → ``conv4`` →
ReLU, global average pooling and ``fc``. Channels ``width·(1, 2, 4, 8)`` = 16/32/64/128 by default.

Stitchable layers are the ReLU modules ``relu1 … relu4``: the output of each convolution *after* its
ReLU (and before the pooling), the same "post-activation" convention as the ResNets' block outputs.
(Hooking ``convK`` would give pre-ReLU maps.) Each ReLU is its own module so each has a name.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .resnet_cifar import init_conv_bn_


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16):
        super().__init__()
        chans = [width * m for m in (1, 2, 4, 8)]
        self.input_bn = nn.BatchNorm2d(in_channels)
        prev = in_channels
        for k, c in enumerate(chans, start=1):
            setattr(self, f"conv{k}", nn.Conv2d(prev, c, 3, padding=1))
            setattr(self, f"relu{k}", nn.ReLU())
            prev = c
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(prev, num_classes)
        self.num_features = prev
        self.stitchable_layers: tuple[str, ...] = ("relu1", "relu2", "relu3", "relu4")
        init_conv_bn_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(x)
        x = self.pool(self.relu1(self.conv1(x)))
        x = self.pool(self.relu2(self.conv2(x)))
        x = self.pool(self.relu3(self.conv3(x)))
        x = self.relu4(self.conv4(x))
        x = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)
