"""The bootstrap of an OOD test's per-image arrays (:func:`stitchkit.ood.per_sample.score_arrays`, a study
ood unit's ``scores.npz``): each stitch's AUROC, AUPR, FPR95 and norm ratio on every resample, and their
percentile intervals. Torch-free, so the study's report makes them from the stored artifact without
loading a network.

Where the genuine and the stitched activations come from the same test images (``paired``, the
default), a resample draws the same images on both sides; otherwise each side is resampled
independently. Every cell uses the same resamples (:func:`~.bootstrap.resample_counts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import StitchkitError
from .bootstrap import BootstrapSpec, percentile_interval, resample_counts
from .intervals import mean_samples, ood_metric_samples

#: the metrics that get intervals, besides ``norm_ratio`` (keys of :func:`interval_grids`: ``"<metric>|<detector>"``)
INTERVAL_METRICS = ("auroc", "aupr", "fpr95")
#: the separator of the arrays' keys
SEP = "|"


def _split(arrays: Mapping[str, np.ndarray]) -> tuple[dict, dict, dict, dict]:
    """The arrays by role: genuine ``{(end, det)}``, stitched ``{(front, end, det)}``, genuine norms
    ``{end}``, stitched norms ``{(front, end)}``."""
    genuine, stitched, norm_genuine, norm_stitched = {}, {}, {}, {}
    for key, values in arrays.items():
        role, *parts = key.split(SEP)
        target = {
            "genuine": genuine,
            "stitched": stitched,
            "norm_genuine": norm_genuine,
            "norm_stitched": norm_stitched,
        }.get(role)
        if target is None:
            continue  # another statistic kept beside the scores
        target[parts[0] if len(parts) == 1 else tuple(parts)] = np.asarray(values, dtype=np.float64)
    return genuine, stitched, norm_genuine, norm_stitched


def _counts(genuine: dict, stitched: dict, spec: BootstrapSpec, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    """The resamples of the genuine and of the stitched images (the same ones where ``paired``)."""
    n = {v.size for v in genuine.values()}
    m = {v.size for v in stitched.values()}
    if len(n) != 1 or len(m) != 1:
        raise StitchkitError(
            "the per-image OOD scores disagree in length: every genuine and every stitched array must cover its whole "
            "test set"
        )
    (n,), (m,) = n, m
    stitched_counts = resample_counts(m, spec.resamples, spec.seed)
    if paired:
        if n != m:
            raise StitchkitError(
                f"paired genuine and stitched scores need the same test images, got {n} genuine and {m} stitched scores"
            )
        return stitched_counts, stitched_counts
    # independent samples: the genuine side draws its own images (another seed, so that equal sizes do not pair them)
    return resample_counts(n, spec.resamples, spec.seed + 1), stitched_counts


def metric_samples(
    arrays: Mapping[str, np.ndarray],
    spec: BootstrapSpec,
    *,
    paired: bool = True,
    positive: str = "id",
    tpr: float = 0.95,
    fpr_rule: str = "closest",
) -> dict[str, dict[tuple[str, str], np.ndarray]]:
    """Every stitch's statistics on each of ``spec.resamples`` resamples of its images, from the per-image
    ``arrays`` of :func:`score_arrays`: ``{"auroc|<detector>": {(front, end): (B,)}, …, "norm_ratio": {…}}``
    (AUROC, AUPR and FPR95 per detector with the test's metric convention; the norm ratio where both
    sides' norms are stored)."""
    genuine, stitched, norm_genuine, norm_stitched = _split(arrays)
    if not stitched:
        raise StitchkitError("no stitched scores to resample")
    counts_id, counts_ood = _counts(genuine, stitched, spec, paired)
    out: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    for (front, end, name), ood in stitched.items():
        samples = ood_metric_samples(
            genuine[(end, name)], ood, counts_id, counts_ood, positive=positive, tpr=tpr, fpr_rule=fpr_rule
        )
        for metric in INTERVAL_METRICS:
            out.setdefault(f"{metric}{SEP}{name}", {})[(front, end)] = samples[metric]
    cells = [(front, end) for front, end in norm_stitched if end in norm_genuine]
    if cells:
        # every stitch's mean norm in one product per side; the ratio of the means, resample by resample
        stitched_means = mean_samples(np.stack([norm_stitched[c] for c in cells]), counts_ood)  # (B, cells)
        genuine_means = mean_samples(np.stack([norm_genuine[e] for _, e in cells]), counts_id)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = stitched_means / genuine_means
        out["norm_ratio"] = {cell: ratios[:, k] for k, cell in enumerate(cells)}
    return out


def interval_grids(
    arrays: Mapping[str, np.ndarray],
    front_layers: Sequence[str],
    end_layers: Sequence[str],
    spec: BootstrapSpec,
    *,
    paired: bool = True,
    positive: str = "id",
    tpr: float = 0.95,
    fpr_rule: str = "closest",
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Front × end percentile intervals (``(lower, upper)``, NaN where no stitch) of each detector's
    AUROC, AUPR and FPR95 (keys ``"auroc|<detector>"``, …) and of the norm ratio (``"norm_ratio"``),
    from the per-image ``arrays`` of :func:`score_arrays`, with the metric convention of the test."""
    rows, cols = {f: i for i, f in enumerate(front_layers)}, {e: j for j, e in enumerate(end_layers)}
    shape = (len(front_layers), len(end_layers))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, cells in metric_samples(
        arrays, spec, paired=paired, positive=positive, tpr=tpr, fpr_rule=fpr_rule
    ).items():
        lower, upper = np.full(shape, np.nan), np.full(shape, np.nan)
        for (front, end), samples in cells.items():
            lower[rows[front], cols[end]], upper[rows[front], cols[end]] = percentile_interval(samples, spec.level)
        out[key] = (lower, upper)
    return out


__all__ = ["INTERVAL_METRICS", "SEP", "interval_grids", "metric_samples"]
