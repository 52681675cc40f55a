"""The per-image statistics of an OOD test of stitches, and the bootstrap intervals made from them
(issue 19): resampling the test images, never re-running the networks or the detectors.

:func:`score_arrays` gives the outlier scores of every image, genuine and stitched, and every
image's activation norm, under the keys of a study ood unit's ``scores.npz`` artifact:

* ``genuine|<end layer>|<detector>`` and ``stitched|<front layer>|<end layer>|<detector>``: the scores
  the metrics are computed from (outlier scores, higher = more OOD: :mod:`.metrics`);
* ``norm_genuine|<end layer>`` and ``norm_stitched|<front layer>|<end layer>``: the norms whose means
  the norm ratio divides (:data:`~stitchkit.results.ood_scores.NORM_DEFINITION`).

:func:`~stitchkit.uncertainty.stitch_scores.interval_grids` makes the percentile intervals of AUROC, AUPR, FPR95 and the
norm ratio of
every cell from such arrays (so a study can make them from the stored artifact alone). Where the
genuine and the stitched activations come from the same test images (``paired``, the default: the
evaluation set is the ID set), a resample draws the same images on both sides; otherwise the two
sides are resampled independently. Every cell uses the same resamples
(:func:`~stitchkit.uncertainty.bootstrap.resample_counts`), so differences between cells have
intervals too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import StitchkitError
from ..uncertainty.bootstrap import BootstrapSpec
from ..uncertainty.stitch_scores import SEP, interval_grids
from .metrics import OODConvention

#: what a study ood unit's ``scores.npz`` holds (its conventions say it)
SCORES_CONVENTION = (
    "per test image, in the test set's order: genuine|<end>|<detector> and stitched|<front>|<end>|<detector> outlier "
    "scores (higher = more OOD; the metrics' inputs), norm_genuine|<end> and norm_stitched|<front>|<end> activation "
    "norms (norm ratio = mean stitched / mean genuine); genuine and stitched on the same images"
)


def score_arrays(
    results: Mapping[tuple[str, str], Any], id_scores: Mapping[str, Mapping[str, Any]], id_norms: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """The per-image arrays of an OOD test (module docstring) from its ``results`` (``{(front, end):
    StitchOODResult}``, :attr:`.matrices.OODMatrices.results`) and the genuine side's ``id_scores``
    (``{end layer: {detector: scores}}``) and ``id_norms`` (``{end layer: norms}``), as float64."""
    ends = list(dict.fromkeys(end for _, end in results))
    out: dict[str, np.ndarray] = {}
    for end in ends:
        for name, values in id_scores[end].items():
            out[SEP.join(("genuine", end, name))] = np.asarray(values, dtype=np.float64)
        if end in id_norms:
            out[SEP.join(("norm_genuine", end))] = np.asarray(id_norms[end], dtype=np.float64)
    for (front, end), result in results.items():
        for name, values in result.ood_scores.items():
            out[SEP.join(("stitched", front, end, name))] = np.asarray(values, dtype=np.float64)
        if result.norms is not None:
            out[SEP.join(("norm_stitched", front, end))] = np.asarray(result.norms, dtype=np.float64)
    return out


def attach_intervals(
    matrices: Any,
    id_scores: Mapping[str, Mapping[str, Any]],
    id_norms: Mapping[str, Any],
    spec: BootstrapSpec | int,
    *,
    paired: bool = True,
    convention: OODConvention | None = None,
) -> None:
    """Give ``matrices`` (:class:`.matrices.OODMatrices`, complete) the intervals of :func:`interval_grids`
    made from its own per-image scores and the genuine side's, under the metric ``convention`` (None: its
    defaults); nothing when the bootstrap is off."""
    spec = as_bootstrap(spec)
    if not spec.enabled:
        return
    arrays = score_arrays(matrices.results, id_scores, id_norms)
    options = (convention or OODConvention()).options()
    grids = interval_grids(arrays, matrices.front_layers, matrices.end_layers, spec, paired=paired, **options)
    matrices.set_intervals(grids, {**spec.record(), "paired": paired})


def as_bootstrap(spec: BootstrapSpec | int | None) -> BootstrapSpec:
    """A :class:`BootstrapSpec` from itself, a number of resamples (0 or None: off) or None."""
    if isinstance(spec, BootstrapSpec):
        return spec
    if spec is None:
        return BootstrapSpec(resamples=0)
    if isinstance(spec, bool) or not isinstance(spec, (int, np.integer)) or spec < 0:
        raise StitchkitError(
            f"the number of bootstrap resamples must be a non-negative integer (0: no intervals), got {spec!r}"
        )
    return BootstrapSpec(resamples=int(spec))


__all__ = ["SCORES_CONVENTION", "as_bootstrap", "attach_intervals", "score_arrays"]
