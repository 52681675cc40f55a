"""``c2t``: (C,H,W) maps to (T,D) tokens: a 1×1 conv, flattened positions, optionally a CLS token."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...declarations import declare
from .base import StitchingLayer, conv1x1, need_rank, shape_error


@declare(
    "stitching_layer",
    "c2t",
    order=3,
    auto_for=(3, 2),
    help="(C,H,W) → (T,D): 1×1 conv, flatten to H·W tokens, optionally prepend a CLS token (--c2t-cls)",
)
class ConvToTrans(StitchingLayer):
    """``c2t``: 1×1 conv to the token width, flatten ``(B, D, H, W) -> (B, H·W, D)`` (row-major positions),
    then the CLS option: ``None`` adds nothing, ``"pool"`` prepends the mean of the tokens, ``"learn"``
    prepends a learned token initialised N(0, 1e-6). No resizing: H·W (+1 with CLS) must equal the
    target token count.

    Direct matching fits the patch tokens only (the CLS token of the target is dropped in
    :meth:`transform_target`), which fixes the original's row-count failure with a CLS target.
    """

    @classmethod
    def build(cls, source_shape, target_shape, options) -> ConvToTrans:
        return cls(source_shape, target_shape, cls=options["c2t_cls"])

    def __init__(self, source_shape, target_shape, *, cls: str | None = None):
        need_rank(self.kind, source_shape, target_shape, 3, 2)
        c, h, w = source_shape
        n_tokens, _ = target_shape
        extra = 0 if cls is None else 1
        if h * w + extra != n_tokens:
            if cls is None and h * w + 1 == n_tokens:
                why = "the target has one more token than H·W; pass c2t_cls='pool' or 'learn' to add a CLS token"
            else:
                why = (
                    f"H·W{' + 1 (CLS)' if extra else ''} = {h * w + extra} differs from the target token count "
                    f"{n_tokens}"
                )
            raise shape_error(self.kind, source_shape, target_shape, why)
        super().__init__(source_shape, target_shape, conv1x1(c, target_shape[1]))
        self.cls = cls
        if cls == "learn":
            self.cls_token = nn.Parameter(torch.randn(1, 1, target_shape[1]) * 1e-6)

    def post_transform(self, y: Tensor) -> Tensor:
        tokens = y.flatten(2).transpose(1, 2)  # (B, H·W, D)
        if self.cls == "pool":
            return torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        if self.cls == "learn":
            return torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens

    def transform_target(self, y: Tensor) -> Tensor:
        if self.cls is not None:
            y = y[:, 1:]
        _, h, w = self.source_shape
        return y.transpose(1, 2).reshape(y.shape[0], y.shape[2], h, w)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", cls={self.cls!r}"
