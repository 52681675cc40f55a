"""``t2t``: a Linear on the last dimension of (T,D) tokens, every token including CLS."""

from __future__ import annotations

from torch import nn

from ...declarations import declare
from .base import StitchingLayer, need_rank, shape_error


@declare(
    "stitching_layer",
    "t2t",
    order=2,
    auto_for=(2, 2),
    help="(T,D) → (T,D'): Linear on every token including CLS; equal T",
)
class TransToTrans(StitchingLayer):
    """``t2t``: a Linear on the last dimension, applied to every token including CLS."""

    rectangular_eye = True  # the original's eye(D_tgt, D_src)

    def __init__(self, source_shape, target_shape):
        need_rank(self.kind, source_shape, target_shape, 2, 2)
        if source_shape[0] != target_shape[0]:
            raise shape_error(self.kind, source_shape, target_shape, "the token counts differ")
        super().__init__(source_shape, target_shape, nn.Linear(source_shape[1], target_shape[1]))
