"""``t2c``: (T,D) tokens to (C,H,W) maps: CLS handling, the tokens as a square grid, a resize, a 1×1 conv."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ...declarations import declare
from ...models.resize import resize_map
from .base import StitchingLayer, conv1x1, need_rank, shape_error


def _is_square(n: int) -> bool:
    return n >= 0 and math.isqrt(n) ** 2 == n


@declare(
    "stitching_layer",
    "t2c",
    order=4,
    auto_for=(2, 3),
    help="(T,D) → (C,H,W): CLS drop/add/only (--t2c-cls), tokens → √N×√N grid, resize to (H,W), 1×1 conv",
)
class TransToConv(StitchingLayer):
    """``t2c``: CLS handling, tokens ``(B, N, D)`` → grid ``(B, D, √N, √N)`` (row-major), resize to the
    target (H, W), 1×1 conv.

    CLS handling, only when the front has a CLS token (token 0): ``"drop"`` (default) discards it,
    ``"add"`` adds ``w·CLS`` to every patch token with a learned scalar ``w`` (init 0.1), ``"only"`` repeats
    the CLS token over all patch positions. Whether the front has a CLS token comes from
    ``front_has_cls``; ``None`` infers it like the original (the token count is not a perfect square).
    """

    @classmethod
    def build(cls, source_shape, target_shape, options) -> TransToConv:
        return cls(
            source_shape,
            target_shape,
            cls=options["t2c_cls"],
            front_has_cls=options["front_has_cls"],
            upsample_mode=options["upsample_mode"],
        )

    def __init__(
        self,
        source_shape,
        target_shape,
        *,
        cls: str | None = None,
        front_has_cls: bool | None = None,
        upsample_mode: str = "bilinear",
    ):
        need_rank(self.kind, source_shape, target_shape, 2, 3)
        n_tokens, d = source_shape
        if front_has_cls is None:
            front_has_cls = not _is_square(n_tokens)
        n_patches = n_tokens - 1 if front_has_cls else n_tokens
        if n_patches < 1 or not _is_square(n_patches):
            raise shape_error(
                self.kind,
                source_shape,
                target_shape,
                f"{n_patches} patch tokens ({'with' if front_has_cls else 'without'} a CLS token) do not form "
                "a square grid; set front_has_cls to match the front model",
            )
        if not front_has_cls and cls in ("add", "only"):
            raise shape_error(
                self.kind, source_shape, target_shape, f"t2c_cls={cls!r} needs a front CLS token, but there is none"
            )
        super().__init__(source_shape, target_shape, conv1x1(d, target_shape[0]))
        self.front_has_cls = bool(front_has_cls)
        self.cls = (cls or "drop") if front_has_cls else None
        self.grid = math.isqrt(n_patches)
        self.upsample_mode = upsample_mode
        self.size = (self.target_shape[1], self.target_shape[2])
        if self.cls == "add":
            self.cls_token_weight = nn.Parameter(torch.tensor(0.1))

    def pre_transform(self, x: Tensor) -> Tensor:
        if self.front_has_cls:
            cls_tok, patches = x[:, :1], x[:, 1:]
            if self.cls == "add":
                x = patches + self.cls_token_weight * cls_tok
            elif self.cls == "only":
                x = cls_tok.expand(-1, patches.shape[1], -1)
            else:
                x = patches
        b, _, d = x.shape
        grid = x.reshape(b, self.grid, self.grid, d).permute(0, 3, 1, 2)
        return resize_map(grid, self.size, self.upsample_mode)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", front_has_cls={self.front_has_cls}, cls={self.cls!r}, upsample_mode={self.upsample_mode!r}"
        )
