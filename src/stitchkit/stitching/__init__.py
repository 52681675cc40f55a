"""Stitching: the layers placed between a front and an end network, and direct matching (least squares).

* :mod:`.layers` — the stitching-layer registry (:func:`make_stitching_layer`, :func:`list_stitching_layers`).
* :mod:`.direct_match` — the streamed least-squares fit of a layer's affine map and the residual meters.
"""

from .direct_match import (
    DirectMatchResult,
    LeastSquaresAccumulator,
    ResidualMeter,
    direct_match,
    fit_affine,
    relative_residual,
)
from .layers import (
    StitchingLayer,
    auto_stitching_type,
    list_stitching_layers,
    make_stitching_layer,
)

__all__ = [
    "DirectMatchResult",
    "LeastSquaresAccumulator",
    "ResidualMeter",
    "StitchingLayer",
    "auto_stitching_type",
    "direct_match",
    "fit_affine",
    "list_stitching_layers",
    "make_stitching_layer",
    "relative_residual",
]
