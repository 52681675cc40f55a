"""The stitchable layers of a model in memory: :func:`list_layers`, what ``stitchkit layers`` lists for
a registered name or a checkpoint, for any ``nn.Module`` (a thin view of
:class:`~stitchkit.models.layers.LayeredModel`, which finds the layers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from ..data import dataset_info
from ..errors import StitchkitError
from ..models.layers import layered


@dataclass(frozen=True)
class LayerInfo:
    """One stitchable layer: its position in forward order (``index``), its ``name`` (what every other
    function takes), the class of its module (``module_type``, e.g. ``BasicBlock``) and the shape of its
    activation without the batch dimension (``shape``; None where no input size was known)."""

    index: int
    name: str
    module_type: str
    shape: tuple[int, ...] | None = None


def _input_shape(model: nn.Module, input_shape: Sequence[int] | str | None) -> tuple[int, ...] | None:
    """The input shape (C, H, W) to measure activations with: the one given, a dataset name's, or the one
    a registered model was built for; None when none of these is known."""
    if isinstance(input_shape, str):
        return tuple(dataset_info(input_shape).shape)
    if input_shape is None:
        spec = getattr(model, "stitchkit_spec", None) or {}
        size, channels = spec.get("input_size"), spec.get("in_channels")
        return (int(channels), *map(int, size)) if size and channels else None
    shape = tuple(input_shape)
    if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
        raise StitchkitError(
            f"input_shape must be positive integers without the batch dimension, e.g. (3, 32, 32); got {input_shape!r}"
        )
    return shape


def list_layers(model: nn.Module, input_shape: Sequence[int] | str | None = None) -> list[LayerInfo]:
    """The stitchable layers of ``model`` in forward order, one :class:`LayerInfo` each.

    ``input_shape``: one input's shape without the batch dimension (``(1, 28, 28)``) or a dataset name
    (``"fashion"``, ``"folder:PATH@3x64x64"``) whose shape to use; the model then runs once on a zero
    input to measure each layer's activation shape. Without it, a model built by stitchkit uses the size
    it was built for, and any other model gets ``shape=None``. Models that ``torch.fx`` cannot trace are
    cut with forward hooks (:mod:`stitchkit.models.hooks`, with a warning), which needs the input shape.
    """
    if not isinstance(model, nn.Module):
        raise StitchkitError(
            f"stitchkit.list_layers takes an nn.Module, got {type(model).__name__}; for a registered name or a "
            "checkpoint, `stitchkit layers NAME_OR_PATH` lists them"
        )
    shape = _input_shape(model, input_shape)
    lm = layered(model, input_shape=shape)
    shapes = lm.shapes(shape) if shape is not None else {}
    return [LayerInfo(i, name, lm.module_types[name], shapes.get(name)) for i, name in enumerate(lm.layers)]


__all__ = ["LayerInfo", "list_layers"]
