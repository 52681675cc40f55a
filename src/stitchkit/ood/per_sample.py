"""The per-image statistics of an OOD test of stitches, and the bootstrap intervals made from them
(issue 19): resampling the test images, never re-running the networks or the detectors.

:func:`score_arrays` gives the outlier scores of every image, genuine and stitched, and every
image's activation norm, under the keys of a study ood unit's ``scores.npz`` artifact:

* ``genuine|<end layer>|<detector>`` and ``stitched|<front layer>|<end layer>|<detector>``: the scores
  the metrics are computed from (outlier scores, higher = more OOD: :mod:`.metrics`);
* ``norm_genuine|<end layer>`` and ``norm_stitched|<front layer>|<end layer>``: the norms whose means
  the norm ratio divides (:data:`~stitchkit.results.ood_scores.NORM_DEFINITION`).

:func:`interval_grids` makes the percentile intervals of AUROC, AUPR, FPR95 and the norm ratio of
every cell from such arrays (so a study can make them from the stored artifact alone). Where the
genuine and the stitched activations come from the same test images (``paired``, the default: the
evaluation set is the ID set), a resample draws the same images on both sides; otherwise the two
sides are resampled independently. Every cell uses the same resamples
(:func:`~stitchkit.uncertainty.bootstrap.resample_counts`), so differences between cells have
intervals too.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import StitchkitError
from ..uncertainty.bootstrap import BootstrapSpec, percentile_interval, resample_counts
from ..uncertainty.intervals import mean_samples, ood_metric_samples
from ..utils.io import write_npz_atomic

#: the metrics that get intervals, besides ``norm_ratio`` (keys of :func:`interval_grids`: ``"<metric>|<detector>"``)
INTERVAL_METRICS = ("auroc", "aupr", "fpr95")
#: the separator of the keys of :func:`score_arrays`
SEP = "|"
#: what a study ood unit's ``scores.npz`` holds (its conventions say it)
SCORES_CONVENTION = ("per test image, in the test set's order: genuine|<end>|<detector> and stitched|<front>|<end>|<detector> outlier "
                     "scores (higher = more OOD; the metrics' inputs), norm_genuine|<end> and norm_stitched|<front>|<end> activation "
                     "norms (norm ratio = mean stitched / mean genuine); genuine and stitched on the same images")


def score_arrays(results: Mapping[tuple[str, str], Any], id_scores: Mapping[str, Mapping[str, Any]],
                 id_norms: Mapping[str, Any]) -> dict[str, np.ndarray]:
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


def write_scores(path: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """``arrays`` (:func:`score_arrays`) as an ``.npz`` file, written atomically."""
    write_npz_atomic(path, arrays)


def _split(arrays: Mapping[str, np.ndarray]) -> tuple[dict, dict, dict, dict]:
    """The arrays by role: genuine ``{(end, det)}``, stitched ``{(front, end, det)}``, genuine norms
    ``{end}``, stitched norms ``{(front, end)}``."""
    genuine, stitched, norm_genuine, norm_stitched = {}, {}, {}, {}
    for key, values in arrays.items():
        role, *parts = key.split(SEP)
        target = {"genuine": genuine, "stitched": stitched, "norm_genuine": norm_genuine, "norm_stitched": norm_stitched}.get(role)
        if target is None:
            continue  # another statistic kept beside the scores
        target[parts[0] if len(parts) == 1 else tuple(parts)] = np.asarray(values, dtype=np.float64)
    return genuine, stitched, norm_genuine, norm_stitched


def _counts(genuine: dict, stitched: dict, spec: BootstrapSpec, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    """The resamples of the genuine and of the stitched images (the same ones where ``paired``)."""
    n = {v.size for v in genuine.values()}
    m = {v.size for v in stitched.values()}
    if len(n) != 1 or len(m) != 1:
        raise StitchkitError("the per-image OOD scores disagree in length: every genuine and every stitched array must cover its whole test set")
    (n,), (m,) = n, m
    stitched_counts = resample_counts(m, spec.resamples, spec.seed)
    if paired:
        if n != m:
            raise StitchkitError(f"paired genuine and stitched scores need the same test images, got {n} genuine and {m} stitched scores")
        return stitched_counts, stitched_counts
    # independent samples: the genuine side draws its own images (another seed, so that equal sizes do not pair them)
    return resample_counts(n, spec.resamples, spec.seed + 1), stitched_counts


def interval_grids(arrays: Mapping[str, np.ndarray], front_layers: Sequence[str], end_layers: Sequence[str], spec: BootstrapSpec, *,
                   paired: bool = True, positive: str = "id", tpr: float = 0.95, fpr_rule: str = "closest") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Front × end percentile intervals (``(lower, upper)``, NaN where no stitch) of each detector's
    AUROC, AUPR and FPR95 (keys ``"auroc|<detector>"``, …) and of the norm ratio (``"norm_ratio"``),
    from the per-image ``arrays`` of :func:`score_arrays`, with the metric convention of the test."""
    genuine, stitched, norm_genuine, norm_stitched = _split(arrays)
    if not stitched:
        raise StitchkitError("no stitched scores to resample")
    counts_id, counts_ood = _counts(genuine, stitched, spec, paired)
    rows, cols = {f: i for i, f in enumerate(front_layers)}, {e: j for j, e in enumerate(end_layers)}
    shape = (len(front_layers), len(end_layers))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for (front, end, name), ood in stitched.items():
        samples = ood_metric_samples(genuine[(end, name)], ood, counts_id, counts_ood, positive=positive, tpr=tpr, fpr_rule=fpr_rule)
        for metric in INTERVAL_METRICS:
            lower, upper = out.setdefault(f"{metric}{SEP}{name}", (np.full(shape, np.nan), np.full(shape, np.nan)))
            lower[rows[front], cols[end]], upper[rows[front], cols[end]] = percentile_interval(samples[metric], spec.level)
    cells = [(front, end) for front, end in norm_stitched if end in norm_genuine]
    if cells:
        # every stitch's mean norm in one product per side; the ratio of the means, resample by resample
        stitched_means = mean_samples(np.stack([norm_stitched[c] for c in cells]), counts_ood)  # (B, cells)
        genuine_means = mean_samples(np.stack([norm_genuine[e] for _, e in cells]), counts_id)
        with np.errstate(divide="ignore", invalid="ignore"):
            lows, highs = percentile_interval(stitched_means / genuine_means, spec.level)
        lower, upper = np.full(shape, np.nan), np.full(shape, np.nan)
        for (front, end), lo, hi in zip(cells, lows, highs):
            lower[rows[front], cols[end]], upper[rows[front], cols[end]] = lo, hi
        out["norm_ratio"] = (lower, upper)
    return out


def attach_intervals(matrices: Any, id_scores: Mapping[str, Mapping[str, Any]], id_norms: Mapping[str, Any], spec: BootstrapSpec | int, *,
                     paired: bool = True, positive: str = "id", tpr: float = 0.95, fpr_rule: str = "closest") -> None:
    """Give ``matrices`` (:class:`.matrices.OODMatrices`, complete) the intervals of :func:`interval_grids`
    made from its own per-image scores and the genuine side's; nothing when the bootstrap is off."""
    spec = as_bootstrap(spec)
    if not spec.enabled:
        return
    arrays = score_arrays(matrices.results, id_scores, id_norms)
    grids = interval_grids(arrays, matrices.front_layers, matrices.end_layers, spec, paired=paired, positive=positive, tpr=tpr, fpr_rule=fpr_rule)
    matrices.set_intervals(grids, {**spec.record(), "paired": paired})


def as_bootstrap(spec: BootstrapSpec | int | None) -> BootstrapSpec:
    """A :class:`BootstrapSpec` from itself, a number of resamples (0 or None: off) or None."""
    if isinstance(spec, BootstrapSpec):
        return spec
    if spec is None:
        return BootstrapSpec(resamples=0)
    if isinstance(spec, bool) or not isinstance(spec, (int, np.integer)) or spec < 0:
        raise StitchkitError(f"the number of bootstrap resamples must be a non-negative integer (0: no intervals), got {spec!r}")
    return BootstrapSpec(resamples=int(spec))


__all__ = ["INTERVAL_METRICS", "SCORES_CONVENTION", "as_bootstrap", "attach_intervals", "interval_grids", "score_arrays", "write_scores"]
