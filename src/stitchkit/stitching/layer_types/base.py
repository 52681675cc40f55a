"""What every stitching-layer type shares: ``forward(x) = post_transform(transform(pre_transform(x)))``
with one affine ``transform`` (see :mod:`stitchkit.stitching.layers`), and the shape checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ...declarations import declaration_of
from ...errors import StitchkitError


def fmt_shape(shape) -> str:
    return str(tuple(int(s) for s in shape))


def shape_error(kind: str, source_shape, target_shape, why: str) -> StitchkitError:
    return StitchkitError(
        f"stitching layer {kind!r} cannot map source shape {fmt_shape(source_shape)} to target shape "
        f"{fmt_shape(target_shape)}: {why}"
    )


class StitchingLayer(nn.Module):
    """Base class: ``forward(x) = post_transform(transform(pre_transform(x)))``.

    A type is one module of :mod:`stitchkit.stitching.layer_types` declaring its class
    (``@declare("stitching_layer", name, ...)``); :meth:`build` makes one from the options of
    :func:`~stitchkit.stitching.layers.make_stitching_layer`.

    Attributes:
        kind: the declared name of the type.
        source_shape, target_shape: activation shapes without the batch dimension.
        transform: the affine module (``nn.Conv2d`` 1×1 or ``nn.Linear``, with bias) that direct
            matching fits.
    """

    #: ``init="eye"`` gives the rectangular ``eye(out, in)`` (the original's for t2t) instead of requiring
    #: equal channel counts
    rectangular_eye: bool = False

    @classmethod
    def build(cls, source_shape: tuple, target_shape: tuple, options: Mapping[str, Any]) -> StitchingLayer:
        """A layer of this type from :func:`~stitchkit.stitching.layers.make_stitching_layer`'s options
        (``upsample_mode``, ``c2t_cls``, ``t2c_cls``, ``front_has_cls``); a type reads those it uses."""
        return cls(source_shape, target_shape)

    @property
    def kind(self) -> str:
        """The declared name of the type (``@declare("stitching_layer", name, ...)`` at the class)."""
        return declaration_of("stitching_layer", type(self)).name

    def __init__(self, source_shape: tuple, target_shape: tuple, transform: nn.Conv2d | nn.Linear):
        super().__init__()
        self.source_shape = tuple(int(s) for s in source_shape)
        self.target_shape = tuple(int(s) for s in target_shape)
        self.transform = transform

    # --- the three stages -------------------------------------------------------------------------
    def pre_transform(self, x: Tensor) -> Tensor:
        """Everything before ``transform``; its output is the direct-matching source."""
        return x

    def post_transform(self, y: Tensor) -> Tensor:
        """Everything after ``transform``."""
        return y

    def transform_target(self, y: Tensor) -> Tensor:
        """Bring an end-layer activation ``(B, *target_shape)`` into the layout of ``transform``'s output.

        This undoes ``post_transform`` where that is possible and is the direct-matching target. Types
        whose ``post_transform`` cannot be undone raise :class:`StitchkitError`.
        """
        return y

    def forward(self, x: Tensor) -> Tensor:
        return self.post_transform(self.transform(self.pre_transform(x)))

    # --- the affine map ---------------------------------------------------------------------------
    @property
    def in_features(self) -> int:
        t = self.transform
        return t.in_channels if isinstance(t, nn.Conv2d) else t.in_features

    @property
    def out_features(self) -> int:
        t = self.transform
        return t.out_channels if isinstance(t, nn.Conv2d) else t.out_features

    def affine(self) -> tuple[Tensor, Tensor]:
        """The current map as a detached ``(out, in)`` weight and ``(out,)`` bias (copies)."""
        w = self.transform.weight.detach().reshape(self.out_features, self.in_features).clone()
        return w, self.transform.bias.detach().clone()

    @torch.no_grad()
    def set_affine(self, weight: Tensor, bias: Tensor) -> None:
        """Install an ``(out, in)`` weight and ``(out,)`` bias into ``transform``.

        The values are copied into the existing parameters, which stay the same ``nn.Parameter``
        objects (an optimizer built earlier keeps working); dtype and device follow the layer.
        """
        weight = torch.as_tensor(weight)
        bias = torch.as_tensor(bias)
        want_w, want_b = (self.out_features, self.in_features), (self.out_features,)
        if tuple(weight.shape) != want_w or tuple(bias.shape) != want_b:
            raise StitchkitError(
                f"stitching layer {self.kind!r} needs a weight of shape {fmt_shape(want_w)} and a bias of shape "
                f"{fmt_shape(want_b)}, got {fmt_shape(weight.shape)} and {fmt_shape(bias.shape)}"
            )
        p_w, p_b = self.transform.weight, self.transform.bias
        p_w.copy_(weight.reshape(p_w.shape).to(device=p_w.device, dtype=p_w.dtype))
        p_b.copy_(bias.to(device=p_b.device, dtype=p_b.dtype))

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, source_shape={self.source_shape}, target_shape={self.target_shape}"


def conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, bias=True)


def need_rank(kind: str, source_shape, target_shape, src_dims: int, tgt_dims: int) -> None:
    names = {1: "(D,)", 2: "(T, D)", 3: "(C, H, W)"}
    if len(source_shape) != src_dims or len(target_shape) != tgt_dims:
        raise shape_error(
            kind,
            source_shape,
            target_shape,
            f"it needs a {names[src_dims]} source and a {names[tgt_dims]} target (shapes without the batch)",
        )
