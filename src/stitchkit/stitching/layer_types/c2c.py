"""``c2c``: a 1×1 conv with bias between (C,H,W) maps of equal spatial sizes."""

from __future__ import annotations

from ...declarations import declare
from .base import StitchingLayer, conv1x1, need_rank, shape_error


@declare("stitching_layer", "c2c", order=1, help="(C,H,W) → (C',H,W): 1×1 conv; the spatial sizes must be equal")
class ConvToConv(StitchingLayer):
    """``c2c``: a 1×1 conv with bias; the spatial sizes must be equal."""

    def __init__(self, source_shape, target_shape):
        need_rank(self.kind, source_shape, target_shape, 3, 3)
        if tuple(source_shape[1:]) != tuple(target_shape[1:]):
            raise shape_error(
                self.kind, source_shape, target_shape, "the spatial sizes differ; use 'rc2c_pre' to resize"
            )
        super().__init__(source_shape, target_shape, conv1x1(source_shape[0], target_shape[0]))
