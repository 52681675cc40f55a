"""The model of an OOD detector: a representation classifier sized for a layer's activations (conv maps
or token sequences) of a network with a given input shape.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import StitchkitError
from ..models import get_model


def default_detector_type(activation_shape: Sequence[int]) -> str:
    """``repr_cls_resnet18`` for conv maps ``(C, H, W)``, ``repr_cls_vit_tiny`` for tokens ``(T, D)``."""
    if len(activation_shape) == 3:
        return "repr_cls_resnet18"
    if len(activation_shape) == 2:
        return "repr_cls_vit_tiny"
    raise StitchkitError(
        f"no representation classifier takes activations of shape {tuple(activation_shape)}; "
        "detectors need (C, H, W) maps or (T, D) token sequences"
    )


def build_detector_model(
    model_type: str,
    activation_shape: Sequence[int],
    num_classes: int,
    input_shape: Sequence[int],
    options: dict | None = None,
) -> nn.Module:
    """A representation classifier for activations of ``activation_shape`` from a network whose input
    is ``input_shape`` (C, H, W): conv detectors resize the map to (H, W); token detectors take D."""
    shape = tuple(activation_shape)
    if model_type.startswith("repr_cls_resnet") and len(shape) != 3:
        raise StitchkitError(
            f"{model_type} takes (C, H, W) activations, but the layer gives {shape}; use repr_cls_vit_tiny for token "
            f"sequences"
        )
    if model_type.startswith("repr_cls_vit") and len(shape) != 2:
        raise StitchkitError(
            f"{model_type} takes (T, D) token sequences, but the layer gives {shape}; use repr_cls_resnet18 for conv "
            f"maps"
        )
    in_channels = shape[0] if len(shape) == 3 else shape[-1]
    return get_model(
        model_type,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=tuple(input_shape[1:]),
        **(options or {}),
    )
