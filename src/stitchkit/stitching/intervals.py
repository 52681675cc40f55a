"""Bootstrap intervals of stitching results from their per-image statistics (issue 19).

Resampling the test images, never the networks: resample ``b`` draws image ``n`` ``counts[b, n]``
times (:func:`~stitchkit.uncertainty.bootstrap.resample_counts`), so over all resamples at once

* accuracy = ``counts @ hits / N``;
* the pooled residual = ``(counts @ num) / (counts @ den)`` (a ratio of sums, resampled as one);
* the relative accuracy = ``(counts @ hits) / (counts @ end_hits)``: the stitched network's accuracy over
  the end network's, both on the same resampled images (the two are paired, so the interval of the
  ratio is narrower than the two intervals would suggest).

The same counts (same N and seed) serve every pair of a grid, so differences between cells are
resampled consistently. Percentile intervals; the bootstrap's settings are recorded with each result
(``StitchResult.interval``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import StitchkitError
from ..uncertainty.bootstrap import BootstrapSpec, percentile_interval, resample_counts
from ..uncertainty.intervals import mean_samples, ratio_samples
from .per_sample import PairSamples
from .records import StitchResult

#: the per-pair metrics that get intervals, and the StitchResult field of each
INTERVAL_FIELDS = {"accuracy": "accuracy_ci", "residual": "residual_ci", "relative_accuracy": "relative_accuracy_ci"}


def bootstrap_spec(settings) -> BootstrapSpec:
    """The bootstrap of :class:`~.settings.StitchSettings`: ``bootstrap`` resamples at ``bootstrap_level``,
    seeded with ``bootstrap_seed`` (None: the settings' ``seed``)."""
    seed = settings.seed if settings.bootstrap_seed is None else settings.bootstrap_seed
    return BootstrapSpec(resamples=settings.bootstrap, level=settings.bootstrap_level, seed=seed)


def metric_samples(samples: Sequence[PairSamples], counts: np.ndarray) -> dict[str, np.ndarray]:
    """``(B, P)`` bootstrap samples of each metric of :data:`INTERVAL_FIELDS` for ``P`` pairs measured on
    the same images (relative accuracy only where the end network's hits are known)."""
    hits = np.stack([s.hits for s in samples])
    out = {
        "accuracy": mean_samples(hits, counts),
        "residual": ratio_samples(
            np.stack([s.residual_num for s in samples]), np.stack([s.residual_den for s in samples]), counts
        ),
    }
    if all(s.end_hits is not None for s in samples):
        out["relative_accuracy"] = ratio_samples(hits, np.stack([s.end_hits for s in samples]), counts)
    return out


def pair_intervals(samples: Sequence[PairSamples], spec: BootstrapSpec) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each metric's ``(lower (P,), upper (P,))`` percentile interval for pairs measured on the same images."""
    if not spec.enabled:
        raise StitchkitError("intervals need bootstrap resamples; give a number above 0 (e.g. 1000)")
    if not samples:
        return {}
    n = samples[0].n
    if any(not np.array_equal(s.images, samples[0].images) for s in samples):
        raise StitchkitError(
            "the pairs were evaluated on different test images; their intervals cannot share resamples"
        )
    counts = resample_counts(n, spec.resamples, spec.seed)
    return {
        metric: percentile_interval(values, spec.level) for metric, values in metric_samples(samples, counts).items()
    }


def attach_intervals(results: Sequence[StitchResult], spec: BootstrapSpec) -> None:
    """Set each result's intervals (:data:`INTERVAL_FIELDS`) and ``interval`` record from its per-image
    statistics, with resamples shared by all of them (grouped by test images); with the bootstrap off,
    or for a result without per-image statistics, clear them (a stored record's intervals may have
    been made with other settings)."""
    for result in results:
        for name in INTERVAL_FIELDS.values():
            setattr(result, name, None)
        result.interval = None
    if not spec.enabled:
        return
    groups: dict[bytes, list[StitchResult]] = {}
    for result in results:
        if result.samples is not None:
            groups.setdefault(result.samples.images.tobytes(), []).append(result)
    for group in groups.values():
        bounds = pair_intervals([r.samples for r in group], spec)
        for k, result in enumerate(group):
            for metric, (lower, upper) in bounds.items():
                setattr(result, INTERVAL_FIELDS[metric], [float(lower[k]), float(upper[k])])
            result.interval = {**spec.record(), "n": result.samples.n}


def describe_ci(result: StitchResult, metric: str, scale: float = 1.0, fmt: str = ".4f", unit: str = "") -> str:
    """`` (95% CI lower–upper)`` of one of the result's intervals, for a printed line (empty without one)."""
    ci = getattr(result, INTERVAL_FIELDS[metric])
    if ci is None or result.interval is None:
        return ""
    return f" ({100 * result.interval['level']:g}% CI {ci[0] * scale:{fmt}}–{ci[1] * scale:{fmt}}{unit})"
