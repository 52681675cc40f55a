"""What a sensitivity or specificity test keeps per test image (issue 19), so that its rank statistics
can be recomputed on bootstrap resamples of the images without running the test again.

The statistics rank the comparisons (reference, candidate) by a measure's dissimilarity d against the
functional difference f = |probe accuracy(reference) − probe accuracy(candidate)|. Both are made of
test images, from two sets:

* **the probes' hits** on the test split (every image, the probes' own order), one row per
  representation; a probe taken from a cache written before stitchkit kept hits has none, and its
  accuracy stays as stored (``fixed``);
* **each array measure's values on every resample** of the measures' images (the first ``n_samples``
  test images): the index recomputed on the resample (:meth:`~stitchkit.similarity.pairs.RepresentationBank.resampled`;
  ``dm_residual`` with its least-squares fit held fixed). A similarity index is no sum over images, so
  the values on the resamples are what the pass keeps; the resamples are
  :func:`~stitchkit.uncertainty.bootstrap.resample_counts` of ``resamples`` and ``seed``, the study's.

A resample b draws the probes' images with ``resample_counts(n_test, B, seed)[b]`` and the measures'
images with ``resample_counts(n_samples, B, seed)[b]`` (independent draws, like every unit on a
different number of images). Fixed in every resample: the networks, layers and ranks compared (the
rank correlation is over those comparisons), the probes' and the fits' training, and the stitching
measures (``dm_accuracy``, ``tlm_accuracy``), which keep no resamples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import StitchkitError
from ..similarity.pairs import Rep
from ..similarity.registry import measure_info
from ..uncertainty.intervals import mean_samples
from .comparisons import Comparison
from .stats import RankAgreement, rank_agreement

PER_SAMPLE_FILE = "per_sample.npz"
VALUES = "values|"


def sample_arrays(
    comparisons: Sequence[Comparison],
    scores: Mapping[Rep, float],
    hits: Mapping[Rep, np.ndarray],
    resamples: Mapping[str, np.ndarray],
    *,
    seed: int,
) -> dict[str, np.ndarray]:
    """The per-sample file's arrays: ``reps`` (labels) and their ``scores`` (probe accuracies), ``reference``
    and ``candidate`` (each comparison's indices into ``reps``), ``hits`` (the probes' hits, one row per
    representation in ``hits_of``), ``values|<measure>`` ((B, comparisons)), ``resamples`` and ``seed``."""
    reps = list(dict.fromkeys([c.reference for c in comparisons] + [c.candidate for c in comparisons]))
    at = {rep: i for i, rep in enumerate(reps)}
    kept = [rep for rep in reps if rep in hits]
    sizes = {int(np.asarray(hits[rep]).size) for rep in kept}
    if len(sizes) > 1:
        raise StitchkitError(
            f"the probes' hits cover different numbers of test images ({sorted(sizes)}); they must share the test split"
        )
    widths = {int(v.shape[0]) for v in resamples.values()}
    if len(widths) > 1:
        raise StitchkitError(f"the measures' resamples differ in number ({sorted(widths)})")
    out: dict[str, np.ndarray] = {
        "reps": np.array([rep.label() for rep in reps]),
        "scores": np.array([float(scores[rep]) for rep in reps]),
        "reference": np.array([at[c.reference] for c in comparisons], dtype=np.int64),
        "candidate": np.array([at[c.candidate] for c in comparisons], dtype=np.int64),
        "hits_of": np.array([at[rep] for rep in kept], dtype=np.int64),
        "hits": np.stack([np.asarray(hits[rep], dtype=np.uint8).reshape(-1) for rep in kept])
        if kept
        else np.zeros((0, 0), np.uint8),
        "resamples": np.int64(widths.pop() if widths else 0),
        "seed": np.int64(seed),
    }
    out.update({f"{VALUES}{measure}": np.asarray(v, dtype=np.float64) for measure, v in resamples.items()})
    return out


def resampled_measures(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """The measures whose values the file keeps on every resample."""
    return [key[len(VALUES) :] for key in arrays if key.startswith(VALUES)]


def resampled_agreements(
    arrays: Mapping[str, np.ndarray], probe_counts: np.ndarray | None
) -> dict[str, list[RankAgreement]]:
    """Each resampled measure's pooled rank agreement (all comparisons in one ranking) on every resample b:
    d from its values on b, f from the probe accuracies on b (``probe_counts`` (B, n_test) applied to the
    kept hits; the stored accuracy where a probe kept none, or for all of them without counts)."""
    measures = resampled_measures(arrays)
    if not measures:
        return {}
    b = int(arrays[f"{VALUES}{measures[0]}"].shape[0])
    accuracy = np.tile(np.asarray(arrays["scores"], dtype=np.float64), (b, 1))
    kept = np.asarray(arrays["hits_of"], dtype=np.int64)
    if kept.size and probe_counts is not None:
        if probe_counts.shape[0] != b:
            raise StitchkitError(f"{probe_counts.shape[0]} resamples of the probes' images for {b} of the measures'")
        accuracy[:, kept] = mean_samples(arrays["hits"], probe_counts)
    ref, cand = np.asarray(arrays["reference"]), np.asarray(arrays["candidate"])
    functional = np.abs(accuracy[:, ref] - accuracy[:, cand])  # (B, comparisons)
    out: dict[str, list[RankAgreement]] = {}
    for measure in measures:
        info = measure_info(measure)
        lo, hi = info.range
        values = np.asarray(arrays[f"{VALUES}{measure}"], dtype=np.float64)
        dissimilarity = (
            hi - values if info.kind == "similarity" else values - lo
        )  # MeasureInfo.dissimilarity, for arrays
        out[measure] = [_agreement(dissimilarity[i], functional[i]) for i in range(b)]
    return out


def fixed_parts(arrays: Mapping[str, np.ndarray], measures: Sequence[str]) -> list[str]:
    """What a resample of this test holds fixed beyond the comparisons themselves: probe accuracies
    without hits, measures without resamples (among ``measures``, those the test reports)."""
    out = []
    missing = sorted(set(range(len(arrays["reps"]))) - {int(i) for i in arrays["hits_of"]})
    if missing:
        labels = [str(arrays["reps"][i]) for i in missing]
        out.append(
            f"the probe accuracies of {', '.join(labels[:4])}{' …' if len(labels) > 4 else ''} (cached without "
            f"per-image hits)"
        )
    unsampled = [m for m in measures if m not in resampled_measures(arrays)]
    if unsampled:
        out.append(f"the values of {', '.join(unsampled)} (no resamples kept)")
    return out


def _agreement(dissimilarity: np.ndarray, functional: np.ndarray) -> RankAgreement:
    """:func:`rank_agreement`, undefined (NaN) on a resample where a value is not finite."""
    if np.isfinite(dissimilarity).all() and np.isfinite(functional).all():
        return rank_agreement(dissimilarity, functional)
    return RankAgreement(int(dissimilarity.size), math.nan, math.nan, math.nan, math.nan, math.nan, 0)
