"""Stitching: the layers placed between a front and an end network, direct matching (least squares),
task loss matching, and stitching experiments on models.

* :mod:`.layers` — the stitching-layer registry (:func:`make_stitching_layer`, :func:`list_stitching_layers`).
* :mod:`.direct_match` — the streamed least-squares fit of a layer's affine map and the residual meters.
* :mod:`.stitcher` — :class:`Stitcher`, the stitched network (front prefix → layer → end suffix).
* :mod:`.matching` — direct matching of a :class:`Stitcher`; its TLM and evaluation as a grid of one.
* :mod:`.grouped`, :mod:`.grid_evaluation` — the one TLM training and the one evaluation of a grid.
* :mod:`.grid_run` — the one path of a grid (per-pair: grids of one), over :mod:`.session`'s pieces.
* :mod:`.grid` — :func:`stitch_pair` / :func:`stitch_grid` with run folders (:mod:`.run_folder`) and result
  records (:mod:`.records`); :mod:`.settings` — :class:`StitchSettings`.
* :mod:`.collect` — front × end matrices from a results folder (:func:`collect_results`).
"""

from ..ranks import LOW_RANK_MODES
from ..utils.lazy import lazy_exports
from .direct_match import (
    DirectMatchResult,
    LeastSquaresAccumulator,
    ResidualMeter,
    accumulate_pairs,
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
    "LOW_RANK_MODES",
    "LeastSquaresAccumulator",
    "ResidualMeter",
    "SourceReducer",
    "StitchEvaluation",
    "StitchResult",
    "StitchSettings",
    "Stitcher",
    "StitcherOptions",
    "StitchingLayer",
    "accumulate_pairs",
    "auto_stitching_type",
    "collect_results",
    "direct_match",
    "evaluate_stitcher",
    "fit_affine",
    "fit_direct_match",
    "list_stitching_layers",
    "load_stitcher",
    "make_stitching_layer",
    "relative_residual",
    "stitch_grid",
    "stitch_pair",
    "task_loss_match",
]

_LAZY = {
    "SourceReducer": "stitcher",
    "Stitcher": "stitcher",
    "StitcherOptions": "stitcher",
    "StitchEvaluation": "grid_evaluation",
    "evaluate_stitcher": "matching",
    "fit_direct_match": "matching",
    "task_loss_match": "matching",
    "StitchResult": "records",
    "StitchSettings": "settings",
    "load_stitcher": "run_folder",
    "stitch_grid": "grid",
    "stitch_pair": "grid",
    "collect_results": "collect",
}


# The model-level parts import the training loop and the data registry; load them on first use so
# that `stitchkit.similarity` (which needs only the least squares) stays light.
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
