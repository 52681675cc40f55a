"""CIFAR-style ResNets (He et al. 2016), as used by the paper's base models.

Differences from the ImageNet ResNet (spec §2.2): the stem is a 3×3 stride-1 convolution with BN and
ReLU and **no max-pool**, so a 32×32 image keeps its size through ``layer1``. Stages have
``width·(1, 2, 4, 8)`` channels (times the block expansion) with strides 1/2/2/2. Bottleneck blocks
are "v1.5" (the stride sits on the 3×3 convolution).

Unlike the original code, which pools with a hard-coded ``avg_pool2d(4)``, the head uses **global
average pooling**, so 28×28 (MNIST-like) and larger inputs work with the same layer names.

Stitchable layers are the block outputs ``layer{s}.{b}`` (after the block's final ReLU). No skip
connection spans a block boundary, so each one is a valid cut of the network.

Parameter names follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1``, ``…downsample.0``,
``fc``), which the original's CIFAR ResNet also uses, so its state_dicts load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import StitchkitError

# blocks per stage for each ResNet depth (He et al. 2016, Table 1)
RESNET_STAGES: dict[int, tuple[type, tuple[int, int, int, int]]] = {}  # filled below the classes


def init_conv_bn_(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU gain) convolutions; BatchNorm weight 1 and bias 0.

    This is the initialisation of torchvision's and the original's ResNets; the other convolutional
    networks of the zoo use it too.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, groups=groups, bias=False)


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    """1×1 conv + BN on the skip path when the block changes the shape, else None (identity)."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN, plus the skip, then ReLU. Output channels = ``planes``."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, groups: int = 1, width_per_group: int = 64):
        super().__init__()
        if groups != 1 or width_per_group != 64:
            raise StitchkitError("BasicBlock ResNets support only groups=1 and width_per_group=64")
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = _downsample(in_ch, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 (reduce) - 3×3 (stride, groups) - 1×1 (expand ×4), BN after each, skip, ReLU (ResNet v1.5).

    The inner width is ``int(planes · width_per_group / 64) · groups``, which gives the plain
    (64, 1), wide (128, 1) and ResNeXt (4 or 8, 32) variants.
    """

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, groups: int = 1, width_per_group: int = 64):
        super().__init__()
        inner = int(planes * (width_per_group / 64.0)) * groups
        if inner < 1:
            raise StitchkitError(
                f"the Bottleneck inner width int({planes}·{width_per_group}/64)·{groups} is 0; "
                "choose a larger 'width' option"
            )
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = _conv3x3(inner, inner, stride, groups)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU()
        self.downsample = _downsample(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_STAGES.update(
    {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
    }
)


@dataclass(frozen=True, kw_only=True)
class BottleneckSpec:
    """The grouping of a Bottleneck ResNet's 3×3 convolutions: ``groups`` of ``width_per_group``
    channels each per 64 planes (1, 64: the plain ResNet; wide ResNets 1, 128; ResNeXt 32, 4 or 8)."""

    groups: int = 1
    width_per_group: int = 64

    def __post_init__(self) -> None:
        for name in ("groups", "width_per_group"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise StitchkitError(f"the bottleneck's {name} must be a positive integer, got {value!r}")

    @classmethod
    def of(cls, given: BottleneckSpec | Mapping[str, int] | None) -> BottleneckSpec:
        """``given`` as a record (a mapping of its fields, as a model family declares it; None: the plain ResNet's)."""
        return given if isinstance(given, cls) else cls(**(given or {}))


class CifarResNet(nn.Module):
    """CIFAR ResNet of any depth in :data:`RESNET_STAGES`.

    Args:
        depth: 18, 34, 50, 101 or 152.
        num_classes: outputs of ``fc``.
        in_channels: input channels of the stem convolution.
        width: base width; the stages have ``width·(1, 2, 4, 8)`` planes (64 in the paper).
        groups, width_per_group: Bottleneck grouping (wide ResNets: 1, 128; ResNeXt: 32, 4 or 8).
        same_width: every stage has ``width`` planes (the paper's ``resnet18_samewidth``).
        same_size: every stage has stride 1, so all maps keep the input size (``resnet18_samesize``).
    """

    def __init__(
        self,
        depth: int = 18,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 64,
        groups: int = 1,
        width_per_group: int = 64,
        same_width: bool = False,
        same_size: bool = False,
    ):
        super().__init__()
        if depth not in RESNET_STAGES:
            raise StitchkitError(f"ResNet depth must be one of {sorted(RESNET_STAGES)}, got {depth}")
        block, counts = RESNET_STAGES[depth]
        planes = (width,) * 4 if same_width else tuple(width * m for m in (1, 2, 4, 8))
        strides = (1, 1, 1, 1) if same_size else (1, 2, 2, 2)

        self.conv1 = _conv3x3(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        in_ch = width
        for s, (p, n, st) in enumerate(zip(planes, counts, strides), start=1):
            blocks = []
            for b in range(n):
                blocks.append(block(in_ch, p, st if b == 0 else 1, groups, width_per_group))
                in_ch = p * block.expansion
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        self.num_features = in_ch
        self.stitchable_layers: tuple[str, ...] = resnet_layer_names(counts)
        init_conv_bn_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.forward_features(x))
        return self.fc(torch.flatten(x, 1))


def resnet_layer_names(counts: Sequence[int]) -> tuple[str, ...]:
    """``layer{s}.{b}`` for every block, stage by stage (also torchvision's ResNet naming)."""
    return tuple(f"layer{s}.{b}" for s, n in enumerate(counts, start=1) for b in range(n))
