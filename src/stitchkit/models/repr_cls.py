"""Representation classifiers, the networks behind the per-layer OOD detectors (spec §2.4).

They take a layer's activation instead of an image and reuse the zoo's building blocks:

* :class:`ReprClsResNet` (``repr_cls_resnet{18,…,152}``): the activation ``(C, h, w)`` is resized
  bilinearly (``align_corners=False``) to the source network's input size ``(H, W)`` (:func:`resize_map`),
  then goes through the CIFAR ResNet of ``resnet_cifar`` whose stem takes ``C`` channels. Pooling is
  global, so (unlike the original) detectors for ImageNet-sized layers work too.
* :class:`ReprClsViT` (``repr_cls_vit_{tiny,…}``): the token sequence ``(T, D_src)`` exactly as it
  leaves a ViT block (CLS included) → ``dim_transform`` (Linear(D_src → D) when the dims differ, else
  Identity) → ``blocks`` (the ViT's pre-LN :class:`~stitchkit.models.vit.Block`) → ``norm`` → token 0
  → ``head``. There is no patch embedding, no new CLS token and no positional embedding.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .resize import resize_map
from .resnet_cifar import CifarResNet
from .vit import LN_EPS, Block, check_vit_dims, init_transformer_


class ReprClsResNet(CifarResNet):
    """CIFAR ResNet on an activation resized to ``input_size`` (the original image size)."""

    def __init__(self, depth: int, num_classes: int, in_channels: int, input_size: tuple[int, int], width: int = 64):
        super().__init__(depth=depth, num_classes=num_classes, in_channels=in_channels, width=width)
        self.input_size = tuple(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(resize_map(x, self.input_size, "bilinear"))


class ReprClsViT(nn.Module):
    """Transformer classifier on a token sequence ``(B, T, in_dim)``; pools token 0."""

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        check_vit_dims(embed_dim, depth, num_heads, mlp_ratio)
        self.dim_transform = nn.Linear(in_dim, embed_dim) if in_dim != embed_dim else nn.Identity()
        self.blocks = nn.Sequential(*(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        self.head = nn.Linear(embed_dim, num_classes)
        self.num_features = embed_dim
        self.stitchable_layers: tuple[str, ...] = tuple(f"blocks.{i}" for i in range(depth))
        init_transformer_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(self.dim_transform(x)))
        return self.head(x[:, 0])
