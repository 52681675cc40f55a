"""Bootstrap samples and percentile intervals of the per-sample statistics a study keeps.

Every statistic here is computed for all ``B`` resamples at once from a counts matrix ``(B, n)``
(:func:`~stitchkit.uncertainty.bootstrap.resample_counts`): resample ``b`` weighs sample ``i`` by how
often it was drawn, which is exactly the statistic of the explicitly repeated samples.

* :func:`mean_samples` — means over the last axis (an accuracy from per-image hits): ``counts @ values / n``.
* :func:`ratio_samples` — ratios of sums (the stitching residual, the activation norm ratio):
  ``(counts @ num) / (counts @ den)``.
* :func:`ood_metric_samples` — AUROC, AUPR and FPR at a TPR level from ID and OOD *outlier scores*,
  with exactly the conventions of :func:`stitchkit.ood.metrics.ood_metrics` (positive class, score
  sign, ties, the FPR rule), as weighted rank statistics: the scores are sorted once, grouped by
  distinct value, and every resample's ROC / precision-recall curve is a cumulative sum of its weights
  per group. Paired data (genuine and stitched scores of the same images) pass one counts matrix for
  both sides; unpaired sets pass one counts matrix each.
* :func:`interval` — the percentile interval of any samples (resamples on axis 0).

The ``*_interval`` functions give the point estimate with its interval. Torch-free: this module does
not import :mod:`stitchkit.ood` (whose package imports torch); the names of the conventions come from
:mod:`stitchkit.choices`, and ``tests/test_uncertainty_stats.py`` checks the results against
``ood_metrics``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..choices import FPR_RULES, POSITIVE_CLASSES
from ..errors import StitchkitError, unknown_name
from .bootstrap import DEFAULT_LEVEL, percentile_interval

#: TPRs within this are equal when the FPR rule picks a threshold; must equal ``stitchkit.ood.metrics._TIE``
#: (a test checks it)
TPR_TIE = 1e-12

#: at most this many (resample, threshold) cells are held at once by :func:`ood_metric_samples` (2 MiB per
#: float64 array, which stays in cache: 2.5× faster than 32 MiB blocks at n = 1000, B = 1000); larger
#: problems are computed in blocks of resamples (each block one set of matrix operations)
OOD_BLOCK_CELLS = 1 << 18

OOD_METRICS = ("auroc", "aupr", "fpr95", "aupr_in", "aupr_out")


# --------------------------------------------------------------------------------------------------
# means and ratios of sums


def _counts(counts: Any, n: int, what: str = "samples") -> np.ndarray:
    """``counts`` as a float64 ``(B, n)`` matrix of non-negative weights, or a StitchkitError."""
    array = np.asarray(counts)
    if array.ndim != 2 or array.shape[1] != n:
        raise StitchkitError(
            f"the resample counts must be a (resamples, {n}) matrix for the {n} {what}, got shape {array.shape}"
        )
    array = array.astype(np.float64, copy=False)
    if array.shape[0] < 1 or np.any(array < 0) or not np.all(np.isfinite(array)):
        raise StitchkitError("the resample counts must hold at least one resample of finite non-negative weights")
    return array


def _per_sample(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < 1 or array.shape[-1] < 1:
        raise StitchkitError(f"the {what} need a last axis of at least one sample, got shape {array.shape}")
    return array


def _weighted_sums(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(B, ...)``: ``Σ_i counts[b, i] · values[..., i]`` for every resample, one matrix product."""
    flat = values.reshape(-1, values.shape[-1])
    return (counts @ flat.T).reshape((counts.shape[0],) + values.shape[:-1])


def mean_samples(values: Any, counts: Any) -> np.ndarray:
    """``(B, ...)`` bootstrap samples of the mean of ``values (..., n)`` over its last axis (each
    resample's weighted mean, weights ``counts (B, n)``)."""
    values = _per_sample(values, "values")
    weights = _counts(counts, values.shape[-1])
    totals = weights.sum(axis=1).reshape((-1,) + (1,) * (values.ndim - 1))
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample of zero weight has no mean: NaN
        return _weighted_sums(values, weights) / np.where(totals > 0, totals, np.nan)


def ratio_samples(num: Any, den: Any, counts: Any) -> np.ndarray:
    """``(B, ...)`` bootstrap samples of ``sum(num) / sum(den)`` over the last axis of ``num`` and
    ``den (..., n)``; NaN where a resample's denominator sums to 0."""
    num, den = _per_sample(num, "numerators"), _per_sample(den, "denominators")
    if num.shape != den.shape:
        raise StitchkitError(f"numerators and denominators must have the same shape, got {num.shape} and {den.shape}")
    weights = _counts(counts, num.shape[-1])
    top, bottom = _weighted_sums(num, weights), _weighted_sums(den, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return top / np.where(bottom != 0, bottom, np.nan)


def interval(samples: Any, level: float = DEFAULT_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)``: the percentile interval of bootstrap ``samples (B, ...)`` (resamples on axis 0)."""
    return percentile_interval(samples, level, axis=0)


def _with_interval(point, samples, level, keep_samples):
    lower, upper = interval(samples, level)
    return (point, lower, upper, samples) if keep_samples else (point, lower, upper)


def mean_interval(values: Any, counts: Any, level: float = DEFAULT_LEVEL, *, keep_samples: bool = False):
    """``(point, lower, upper)`` of the mean over the last axis of ``values (..., n)`` (shapes
    ``values.shape[:-1]``); with ``keep_samples`` also the ``(B, ...)`` samples (e.g. for a verdict's
    robustness)."""
    values = _per_sample(values, "values")
    return _with_interval(values.mean(axis=-1), mean_samples(values, counts), level, keep_samples)


def ratio_interval(num: Any, den: Any, counts: Any, level: float = DEFAULT_LEVEL, *, keep_samples: bool = False):
    """``(point, lower, upper)`` of ``sum(num) / sum(den)`` over the last axis (the pooled residual);
    with ``keep_samples`` also the ``(B, ...)`` samples."""
    num, den = _per_sample(num, "numerators"), _per_sample(den, "denominators")
    samples = ratio_samples(num, den, counts)
    point = ratio_samples(num, den, np.ones((1, num.shape[-1])))[0]  # the ratio of the sums as given
    return _with_interval(point, samples, level, keep_samples)


def norm_ratio_interval(
    stitched: Any, genuine: Any, counts: Any, level: float = DEFAULT_LEVEL, *, keep_samples: bool = False
):
    """``(point, lower, upper)`` of the activation norm ratio ``mean(stitched) / mean(genuine)`` of two
    paired per-image norm arrays ``(..., n)`` (one counts matrix resamples both: the mean ratio of
    paired arrays is their ratio of sums)."""
    return ratio_interval(stitched, genuine, counts, level, keep_samples=keep_samples)


# --------------------------------------------------------------------------------------------------
# OOD metrics as weighted rank statistics


def _scores(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise StitchkitError(f"no {what} scores: OOD metrics need at least one score on each side")
    if not np.all(np.isfinite(array)):
        raise StitchkitError(
            f"{int(np.sum(~np.isfinite(array)))} of the {array.size} {what} scores are NaN or infinite; check the "
            f"detector and its inputs"
        )
    return array


def _group_weights(group: np.ndarray, n_groups: int, weights: np.ndarray) -> np.ndarray:
    """``(B, n_groups)``: each resample's total weight of the samples in each score group."""
    order = np.argsort(group, kind="stable")
    sorted_groups = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    out = np.zeros((weights.shape[0], n_groups))
    out[:, sorted_groups[starts]] = np.add.reduceat(weights[:, order], starts, axis=1)
    return out


def _fpr_at_tpr(tps: np.ndarray, fps: np.ndarray, present: np.ndarray, tpr: float, fpr_rule: str) -> np.ndarray:
    """``(B,)`` false-positive rates at the threshold reaching ``tpr`` under ``fpr_rule`` (ood.metrics'
    ``fpr_at_tpr``), from cumulative true / false positives ``(B, G)`` highest score first; a threshold
    whose group has no weight in a resample (``present`` false) does not exist in that resample."""
    n_pos, n_neg = tps[:, -1:], fps[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample without positives or negatives: NaN
        tprs = tps / n_pos
    if fpr_rule == "at_least":
        chosen = present & (tprs >= tpr - TPR_TIE)
    else:  # the closest TPR; among ties (within TPR_TIE) the higher TPR, and of those the first threshold
        distance = np.where(present, np.abs(tprs - tpr), np.inf)
        candidates = distance <= distance.min(axis=1, keepdims=True) + TPR_TIE
        best = np.where(candidates, tprs, -np.inf).max(axis=1, keepdims=True)
        chosen = candidates & (tprs >= best - TPR_TIE)
    rows = np.arange(tps.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fps[rows, chosen.argmax(axis=1)] / n_neg[:, 0]
    return np.where(chosen.any(axis=1) & (n_pos[:, 0] > 0), fpr, np.nan)


def _average_precision(pos: np.ndarray, tps: np.ndarray, fps: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """``(B,)`` Σ (R_i − R_{i−1})·P_i over the thresholds: a threshold adding no positive adds nothing,
    so the sum runs over each group's positives ``pos`` with the precision ``tps / (tps + fps)`` there."""
    total = tps + fps
    precision = np.divide(tps, total, out=np.zeros_like(total), where=total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("bg,bg->b", pos, precision) / n_pos


def ood_metric_samples(
    id_scores: Any,
    ood_scores: Any,
    counts_id: Any,
    counts_ood: Any = None,
    positive: str = "id",
    tpr: float = 0.95,
    fpr_rule: str = "closest",
) -> dict[str, np.ndarray]:
    """Bootstrap samples ``(B,)`` of the OOD metrics of outlier scores (higher = more OOD), exactly as
    :func:`stitchkit.ood.metrics.ood_metrics` computes them with weights ``counts_id (B, n)`` on the ID
    scores and ``counts_ood (B, m)`` on the OOD scores (``None``: the same matrix as ``counts_id``,
    for paired scores of the same images). Keys: ``auroc``, ``aupr`` and ``fpr95`` (following
    ``positive``), and ``aupr_in`` / ``aupr_out``."""
    if positive not in POSITIVE_CLASSES:
        raise unknown_name("positive class", positive, POSITIVE_CLASSES)
    if fpr_rule not in FPR_RULES:
        raise unknown_name("FPR rule", fpr_rule, FPR_RULES)
    if not 0.0 < tpr <= 1.0:
        raise StitchkitError(f"the TPR level must be in (0, 1], got {tpr}")
    id_s, ood_s = _scores(id_scores, "in-distribution"), _scores(ood_scores, "OOD")
    if counts_ood is None and id_s.size != ood_s.size:
        raise StitchkitError(
            f"paired resampling needs as many OOD as ID scores, got {ood_s.size} and {id_s.size}; pass counts_ood for "
            f"unpaired sets"
        )
    w_id = _counts(counts_id, id_s.size, "ID scores")
    w_ood = w_id if counts_ood is None else _counts(counts_ood, ood_s.size, "OOD scores")
    if w_id.shape[0] != w_ood.shape[0]:
        raise StitchkitError(
            f"the ID and OOD counts must have as many resamples, got {w_id.shape[0]} and {w_ood.shape[0]}"
        )
    # groups of equal outlier score, ascending: the order of decreasing −score (ID positive)
    values, group = np.unique(np.r_[id_s, ood_s], return_inverse=True)
    group_id, group_ood = group[: id_s.size], group[id_s.size :]
    block = max(1, OOD_BLOCK_CELLS // values.size)  # blocks of resamples bound the memory, not a loop per resample
    parts = [
        _ood_block(group_id, group_ood, values.size, w_id[s : s + block], w_ood[s : s + block], positive, tpr, fpr_rule)
        for s in range(0, w_id.shape[0], block)
    ]
    return {key: np.concatenate([part[key] for part in parts]) for key in OOD_METRICS}


def _ood_block(group_id, group_ood, n_groups, w_id, w_ood, positive, tpr, fpr_rule) -> dict[str, np.ndarray]:
    """The metrics of one block of resamples (see :func:`ood_metric_samples`), from each resample's ID
    and OOD weight per group of equal score, in ascending outlier score = descending ID-positive score."""
    id_w, ood_w = _group_weights(group_id, n_groups, w_id), _group_weights(group_ood, n_groups, w_ood)
    # ID positive (score −outlier score): cumulative ID / OOD weight at each threshold, highest first
    tps, fps = np.cumsum(id_w, axis=1), np.cumsum(ood_w, axis=1)
    n_id, n_ood = tps[:, -1], fps[:, -1]
    # OOD positive (the outlier score), thresholds in the opposite order: what lies at or above group g
    tps_out, fps_out = n_ood[:, None] - fps + ood_w, n_id[:, None] - tps + id_w
    with np.errstate(invalid="ignore", divide="ignore"):
        # AUROC = P(ID > OOD) + ½ P(tie) in −score: an ID group beats the OOD weight of every later group
        beaten = np.einsum("bg,bg->b", id_w, fps - 0.5 * ood_w)
        auroc = (n_id * n_ood - beaten) / (n_id * n_ood)
    aupr_in, aupr_out = _average_precision(id_w, tps, fps, n_id), _average_precision(ood_w, tps_out, fps_out, n_ood)
    present = (id_w + ood_w) > 0
    if positive == "id":
        fpr = _fpr_at_tpr(tps, fps, present, tpr, fpr_rule)
    else:
        fpr = _fpr_at_tpr(tps_out[:, ::-1], fps_out[:, ::-1], present[:, ::-1], tpr, fpr_rule)
    return {
        "auroc": auroc,
        "aupr": aupr_in if positive == "id" else aupr_out,
        "fpr95": fpr,
        "aupr_in": aupr_in,
        "aupr_out": aupr_out,
    }


def ood_metric_interval(
    id_scores: Any,
    ood_scores: Any,
    counts_id: Any,
    counts_ood: Any = None,
    level: float = DEFAULT_LEVEL,
    *,
    keep_samples: bool = False,
    **convention: Any,
) -> dict[str, tuple]:
    """``{metric: (point, lower, upper)}`` (with ``keep_samples``: ``(point, lower, upper, samples)``)
    for the keys of :func:`ood_metric_samples`; the point is the metric of the scores as given (unit
    weights), which equals ``ood_metrics``. ``convention`` is the metric convention, the keywords
    ``positive``, ``tpr`` and ``fpr_rule`` of :func:`ood_metric_samples` (which checks them)."""
    id_s, ood_s = _scores(id_scores, "in-distribution"), _scores(ood_scores, "OOD")
    samples = ood_metric_samples(id_s, ood_s, counts_id, counts_ood, **convention)
    points = ood_metric_samples(id_s, ood_s, np.ones((1, id_s.size)), np.ones((1, ood_s.size)), **convention)
    return {key: _with_interval(float(points[key][0]), samples[key], level, keep_samples) for key in OOD_METRICS}
