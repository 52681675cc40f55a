"""``v2v``: a Linear between flat (D,) activations (not in the original)."""

from __future__ import annotations

from torch import nn

from ...declarations import declare
from .base import StitchingLayer, need_rank


@declare(
    "stitching_layer", "v2v", order=8, auto_for=(1, 1), help="(D,) → (D',): Linear (flat vectors; not in the original)"
)
class VecToVec(StitchingLayer):
    """``v2v``: a Linear between flat ``(D,)`` activations (not in the original)."""

    rectangular_eye = True

    def __init__(self, source_shape, target_shape):
        need_rank(self.kind, source_shape, target_shape, 1, 1)
        super().__init__(source_shape, target_shape, nn.Linear(source_shape[0], target_shape[0]))
