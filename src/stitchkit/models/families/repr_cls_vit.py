"""Representation classifiers on token sequences: ViT blocks of each size, CLS-position pooling."""

from __future__ import annotations

import torch.nn as nn

from ...declarations import declare
from ..repr_cls import ReprClsViT
from .vit import MLP_RATIO, TOKEN_OPTIONS, VIT_SIZES


@declare(
    "model_family",
    "repr_cls_vit",
    order=8,
    title="representation classifiers on token sequences",
    sizes=VIT_SIZES,
    options=(TOKEN_OPTIONS, MLP_RATIO),
    description="representation classifier on tokens (T, D_src): ViT-{size} blocks, CLS-position pooling; in_channels "
    "= D_src",
    members={"repr_cls_vit_{size}": {}},
)
def build_repr_cls_vit(num_classes, in_channels, input_size, *, embed_dim, depth, num_heads, mlp_ratio) -> nn.Module:
    return ReprClsViT(
        in_channels, num_classes, embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio
    )
