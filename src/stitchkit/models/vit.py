"""Vision Transformer (Dosovitskiy et al. 2021) with the module names and defaults of timm's
``VisionTransformer`` that the paper used (spec §2.2), written from that description.

* ``patch_embed.proj``: convolution with kernel = stride = patch size, flattened to ``(B, N, D)``.
* ``cls_token`` (1, 1, D) is prepended and the learned ``pos_embed`` (1, N + 1, D) added.
* ``blocks.i``: pre-LN blocks ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``; qkv bias, MLP ratio 4,
  GELU, LayerNorm eps 1e-6, no dropout or drop-path.
* ``norm`` (LayerNorm), token 0 (CLS), ``head`` (Linear).
* Init: trunc-normal(0.02) Linear weights and ``pos_embed``, zero biases, ``cls_token`` ~ N(0, 1e-6).

Parameter names match timm's (``blocks.0.attn.qkv.weight``, ``blocks.0.mlp.fc1.weight``, …), so timm
ViT state_dicts of the same size load.

Stitchable: ``blocks.0 … blocks.{depth-1}``; each output is the residual stream ``(B, T, D)`` with the
CLS token at index 0.

The image size follows the model's ``input_size`` (e.g. 28×28 with patch 4 gives 49 patches + CLS);
the sizes in names like ``vit_tiny_patch4_32`` are the paper's defaults, not a restriction.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import StitchkitError

LN_EPS = 1e-6


class PatchEmbed(nn.Module):
    """Non-overlapping patches → tokens: conv (kernel = stride = patch), then (B, N, D)."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (bias on) and output ``proj``."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise StitchkitError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, 3D) -> (3, B, heads, T, head_dim); written without unpacking x.shape so that
        # torch.fx can trace it
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).flatten(2))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_transformer_(module: nn.Module) -> None:
    """timm's default ViT init for Linear and LayerNorm: trunc-normal(0.02) weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_vit_dims(embed_dim: int, depth: int, num_heads: int, mlp_ratio: float) -> None:
    for opt, v in (("embed_dim", embed_dim), ("depth", depth), ("num_heads", num_heads)):
        if v < 1:
            raise StitchkitError(f"option {opt!r} must be ≥ 1, got {v}")
    if embed_dim % num_heads:
        raise StitchkitError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
    if int(embed_dim * mlp_ratio) < 1:
        raise StitchkitError(f"mlp_ratio {mlp_ratio} gives an empty MLP for embed_dim {embed_dim}")


class VisionTransformer(nn.Module):
    def __init__(
        self,
        img_size: tuple[int, int] = (32, 32),
        patch_size: int = 4,
        in_channels: int = 3,
        num_classes: int = 10,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        check_vit_dims(embed_dim, depth, num_heads, mlp_ratio)
        h, w = img_size
        if patch_size < 1 or h % patch_size or w % patch_size:
            raise StitchkitError(
                f"the input size {h}×{w} is not divisible by the patch size {patch_size}; "
                "choose a patch_size that divides both sides"
            )
        self.img_size = (h, w)
        self.num_patches = (h // patch_size) * (w // patch_size)
        self.embed_dim = self.num_features = embed_dim
        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, embed_dim))
        self.blocks = nn.Sequential(*(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        self.head = nn.Linear(embed_dim, num_classes)
        self.stitchable_layers: tuple[str, ...] = tuple(f"blocks.{i}" for i in range(depth))

        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        init_transformer_(self)

    @property
    def num_tokens(self) -> int:
        """Tokens in every block's output: patches + CLS."""
        return self.num_patches + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])
