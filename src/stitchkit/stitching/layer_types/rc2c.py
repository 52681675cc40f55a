"""``rc2c_pre`` and ``rc2c_post``: a 1×1 conv and a resize between (C,H,W) maps of any sizes, in either
order (the same function; direct matching fits on different sources)."""

from __future__ import annotations

from torch import Tensor

from ...declarations import declare
from ...errors import StitchkitError
from ...models.resize import resize_map
from .base import StitchingLayer, conv1x1, fmt_shape, need_rank


class ResizedConvToConv(StitchingLayer):
    """``rc2c_pre`` (resize, then 1×1 conv; the paper's layer for every conv pair) and ``rc2c_post``
    (1×1 conv, then resize). The resize always runs, also at equal sizes (bilinear is then exact).
    Both orders give the same function (see :meth:`forward`); they differ in what direct matching fits
    on: the resized source (rc2c_pre) or the source at its own size (rc2c_post, equal sizes only)."""

    #: whether the resize comes first (rc2c_pre) or after the conv (rc2c_post)
    pre_resize: bool

    @classmethod
    def build(cls, source_shape, target_shape, options) -> ResizedConvToConv:
        return cls(source_shape, target_shape, upsample_mode=options["upsample_mode"])

    def __init__(self, source_shape, target_shape, *, upsample_mode: str = "bilinear"):
        need_rank(self.kind, source_shape, target_shape, 3, 3)
        super().__init__(source_shape, target_shape, conv1x1(source_shape[0], target_shape[0]))
        self.upsample_mode = upsample_mode
        self.size = (self.target_shape[1], self.target_shape[2])

    def pre_transform(self, x: Tensor) -> Tensor:
        return resize_map(x, self.size, self.upsample_mode) if self.pre_resize else x

    def post_transform(self, y: Tensor) -> Tensor:
        return y if self.pre_resize else resize_map(y, self.size, self.upsample_mode)

    def forward(self, x: Tensor) -> Tensor:
        # The resize (bilinear or nearest) acts on each channel with weights that sum to one, the 1×1
        # conv on the channels of each position: the two commute exactly (bias included), so rc2c_pre
        # and rc2c_post compute the same function. Run the cheaper order: conv first when it shrinks
        # the channels of a map that is then enlarged (e.g. layer4 → layer1), resize first otherwise.
        # Direct matching still fits on pre_transform(x), the resized source, as the original did.
        h_s, w_s = x.shape[-2:]
        h_t, w_t = self.size
        resize_first = h_t * w_t * self.in_features * (self.out_features + 4)
        conv_first = h_s * w_s * self.in_features * self.out_features + h_t * w_t * self.out_features * 4
        if conv_first < resize_first:
            return resize_map(self.transform(x), self.size, self.upsample_mode)
        return self.transform(resize_map(x, self.size, self.upsample_mode))

    def transform_target(self, y: Tensor) -> Tensor:
        if self.pre_resize or tuple(self.source_shape[1:]) == self.size:
            return y  # an equal-size resize is the identity
        raise StitchkitError(
            f"direct matching cannot fit 'rc2c_post' from {fmt_shape(self.source_shape)} to "
            f"{fmt_shape(self.target_shape)} because the resize follows the transform; use 'rc2c_pre'"
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", upsample_mode={self.upsample_mode!r}"


@declare(
    "stitching_layer",
    "rc2c_pre",
    order=5,
    auto_for=(3, 3),
    help="(C,H,W) → (C',H',W'): resize to (H',W') (bilinear, align_corners=False, or nearest), then 1×1 conv",
)
class ResizeThenConv(ResizedConvToConv):
    """``rc2c_pre``: resize, then 1×1 conv (the paper's layer for every conv pair)."""

    pre_resize = True


@declare("stitching_layer", "rc2c_post", order=6, help="(C,H,W) → (C',H',W'): 1×1 conv, then resize")
class ConvThenResize(ResizedConvToConv):
    """``rc2c_post``: 1×1 conv, then resize (direct matching only at equal sizes)."""

    pre_resize = False
