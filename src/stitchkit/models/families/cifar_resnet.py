"""The CIFAR ResNets (3×3 stem, no max-pool): ResNet-18 … 152, the ResNet-18 variants, wide ResNets and ResNeXts."""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn as nn

from ...declarations import declare
from ..options import STAGE_WIDTH
from ..resnet_cifar import BottleneckSpec, CifarResNet

#: the ResNet-18 variants' width (every stage has it)
STEM_WIDTH = {"width": {"default": 64, "kind": "int", "help": "base width (channels of the stem)", "minimum": 1}}


@declare(
    "model_family",
    "cifar_resnet",
    order=1,
    title="CIFAR ResNets",
    options=STAGE_WIDTH,
    description="CIFAR ResNet-{depth} (3×3 stem, no max-pool, global average pooling)",
    members={
        "resnet18": {"args": {"depth": 18}},
        "resnet34": {"args": {"depth": 34}},
        "resnet50": {"args": {"depth": 50}},
        "resnet101": {"args": {"depth": 101}},
        "resnet152": {"args": {"depth": 152}},
        "resnet18_samewidth": {
            "args": {"depth": 18, "same_width": True},
            "options": STEM_WIDTH,
            "description": "CIFAR ResNet-18 with every stage `width` channels",
        },
        "resnet18_samesize": {
            "args": {"depth": 18, "same_size": True},
            "options": STEM_WIDTH,
            "description": "CIFAR ResNet-18 with every stage stride 1",
        },
        "resnet18_samewidth_samesize": {
            "args": {"depth": 18, "same_width": True, "same_size": True},
            "options": STEM_WIDTH,
            "description": "CIFAR ResNet-18 with every stage `width` channels and every stage stride 1",
        },
        "wide_resnet50_2": {
            "args": {"depth": 50, "bottleneck": {"groups": 1, "width_per_group": 128}},
            "description": "CIFAR-style wide ResNet-50-2 (Bottleneck, groups 1, width_per_group 128)",
        },
        "wide_resnet101_2": {
            "args": {"depth": 101, "bottleneck": {"groups": 1, "width_per_group": 128}},
            "description": "CIFAR-style wide ResNet-101-2 (Bottleneck, groups 1, width_per_group 128)",
        },
        "resnext50_32x4d": {
            "args": {"depth": 50, "bottleneck": {"groups": 32, "width_per_group": 4}},
            "description": "CIFAR-style ResNeXt-50 32×4d (Bottleneck, groups 32, width_per_group 4)",
        },
        "resnext101_32x8d": {
            "args": {"depth": 101, "bottleneck": {"groups": 32, "width_per_group": 8}},
            "description": "CIFAR-style ResNeXt-101 32×8d (Bottleneck, groups 32, width_per_group 8)",
        },
    },
)
def build_cifar_resnet(
    num_classes,
    in_channels,
    input_size,
    *,
    depth,
    width,
    bottleneck: BottleneckSpec | Mapping[str, int] | None = None,
    same_width=False,
    same_size=False,
) -> nn.Module:
    """A member of the family: ``depth``, the Bottleneck grouping (:class:`BottleneckSpec`, given as a mapping of its
    fields by the wide ResNets and ResNeXts) and the ResNet-18 variants' ``same_width``/``same_size``."""
    spec = BottleneckSpec.of(bottleneck)
    return CifarResNet(
        depth,
        num_classes,
        in_channels,
        width=width,
        groups=spec.groups,
        width_per_group=spec.width_per_group,
        same_width=same_width,
        same_size=same_size,
    )
