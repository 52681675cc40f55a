"""The zoo's own Vision Transformers, in eight sizes, at patch 4 for 32 pixels and patch 16 for 224."""

from __future__ import annotations

import torch.nn as nn

from ...declarations import declare
from ..vit import VisionTransformer

#: size word → its token dimension, depth and heads (spec §2.2); ``{size}`` in a member's name runs over them
VIT_SIZES = {
    "tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "medium": {"embed_dim": 512, "depth": 12, "num_heads": 8},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
    "large": {"embed_dim": 1024, "depth": 24, "num_heads": 16},
    "huge": {"embed_dim": 1280, "depth": 32, "num_heads": 16},
    "giant": {"embed_dim": 1408, "depth": 40, "num_heads": 16},
    "gigantic": {"embed_dim": 1664, "depth": 48, "num_heads": 16},
}
#: the transformer's options (their defaults come with the size)
TOKEN_OPTIONS = {
    "embed_dim": {"kind": "int", "help": "token dimension D", "minimum": 1},
    "depth": {"kind": "int", "help": "number of transformer blocks", "minimum": 1},
    "num_heads": {"kind": "int", "help": "attention heads (must divide embed_dim)", "minimum": 1},
}
PATCH_OPTION = {
    "patch_size": {"kind": "int", "help": "patch side in pixels (must divide the input size)", "minimum": 1}
}
MLP_RATIO = {
    "mlp_ratio": {
        "default": 4.0,
        "kind": "float",
        "help": "MLP hidden size / embed_dim",
        "minimum": 0,
        "exclusive_minimum": True,
    }
}


@declare(
    "model_family",
    "vit",
    order=6,
    title="Vision Transformers (own implementation)",
    sizes=VIT_SIZES,
    options=(TOKEN_OPTIONS, PATCH_OPTION, MLP_RATIO),
    description="ViT-{size} (D {embed_dim}, depth {depth}, heads {num_heads}), patch {patch_size}; image size = "
    "input_size",
    members={
        "vit_{size}_patch4_32": {"defaults": {"patch_size": 4}, "input_size": (32, 32)},
        "vit_{size}_patch16_224": {"defaults": {"patch_size": 16}, "input_size": (224, 224)},
    },
)
def build_vit(num_classes, in_channels, input_size, *, embed_dim, depth, num_heads, patch_size, mlp_ratio) -> nn.Module:
    return VisionTransformer(
        input_size,
        patch_size,
        in_channels,
        num_classes,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
    )
