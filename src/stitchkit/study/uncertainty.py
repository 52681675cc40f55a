"""How sure a study's numbers are, computed at report time from the per-sample statistics its units
store (issue 19), so that switching ``[uncertainty]`` on re-runs no stitch, OOD or probe unit.

Every unit that measures something on test images stores, whatever the settings, what each image
contributed (the CONTRACT formats): a stitch unit its hits and residual numerators and denominators per
test image and its fit residual's per fit image, the map held fixed (``per_sample.npz``), an OOD unit its
detector scores and activation norms per image (``scores.npz``), a probes unit its probes' hits per image
and a network (``train`` / ``network``) unit its clean hits (``per_sample.npz``), a sensitivity or
specificity test its probes' hits and its indices' values on the verdict resamples
(``per_sample.npz``, :mod:`stitchkit.sensitivity.per_sample`: an index is no sum over images, so the
test computes it on the resamples the study passes it, outside its identity). A bootstrap resample is
a row of counts (:func:`~stitchkit.uncertainty.bootstrap.resample_counts`), the same for every unit on
the same number of test images, so

* :func:`~.resampling.matrix_samples` recomputes every matrix the unit reports, for all resamples at once
  (a mean and a ratio of sums are one matrix product each; the OOD metrics are weighted by the counts);
* :func:`interval_matrices` turns them into percentile intervals (the matrices' ``lower`` / ``upper``);
* :func:`verdict_robustness` recomputes every matrix and donor accuracy the findings read for each of
  ``verdict_resamples`` resamples, runs the claims on them and says how often each verdict comes out
  the same (fragile below :data:`~.findings.model.FRAGILE_BELOW`; :mod:`.robustness`).

The similarity units compute their intervals and permutation p-values themselves (they hold the
activations); their matrices arrive here with bounds already.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..uncertainty.bootstrap import BootstrapSpec, percentile_interval
from ..uncertainty.intervals import mean_samples, ratio_samples
from .config import validate_section
from .findings.model import Findings
from .resampling import FIT_RESIDUAL, Resamples, load_statistics, matrix_samples
from .robustness import resampled_verdicts
from .store import UnitRecord

#: what the fit residual's interval holds fixed (its interval record says so)
FIT_HELD_FIXED = (
    "the map fitted on these images: its per-image terms are resampled with the fit held fixed (the interval covers "
    "the evaluation on the fit images, not a refit on another draw of them)"
)


@dataclass(frozen=True)
class UncertaintySettings:
    """A study's ``[uncertainty]`` section (a store written before it existed gets its defaults)."""

    bootstrap: int
    similarity_bootstrap: int
    permutations: int
    level: float
    seed: int
    verdict_resamples: int

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> UncertaintySettings:
        return cls(**validate_section("uncertainty", (config or {}).get("uncertainty") or {}))

    @property
    def spec(self) -> BootstrapSpec:
        return BootstrapSpec(self.bootstrap, self.level, self.seed)


# -- intervals -----------------------------------------------------------------------------------------
def interval_matrices(
    study_dir: str | Path, record: UnitRecord, settings: UncertaintySettings
) -> dict[str, dict[str, Any]]:
    """The unit's stored matrices, those its per-sample statistics cover with ``lower`` / ``upper`` bounds
    (percentile intervals of ``settings.bootstrap`` resamples) and the ``interval`` record; the others
    (and all of them with the bootstrap off) as stored. A stitch grid's accuracy matrix also gets the
    bounds of its relative accuracy under ``"relative"`` (:func:`_relative_bounds`)."""
    stored = dict(record.metrics.get("matrices") or {})
    if not settings.bootstrap or not stored:  # (the tests and the networks have statistics but no matrices)
        return stored
    sampled = matrix_samples(study_dir, record, Resamples(settings.bootstrap, settings.seed))
    if sampled is None:
        return stored
    matrices, scalars, _ = sampled
    for name, samples in matrices.items():
        lower, upper = percentile_interval(samples, settings.level)
        interval = {**settings.spec.record(), **({"held_fixed": FIT_HELD_FIXED} if name.endswith(FIT_RESIDUAL) else {})}
        stored[name] = {
            **stored[name],
            "lower": _nan_as_none(lower),
            "upper": _nan_as_none(upper),
            "interval": interval,
        }
        if record.kind == "stitch" and name.endswith(" accuracy") and "end_accuracy" in scalars:
            stored[name]["relative"] = _relative_bounds(samples, scalars["end_accuracy"], settings)
    return stored


def _relative_bounds(accuracy: np.ndarray, end_accuracy: np.ndarray, settings: UncertaintySettings) -> dict[str, Any]:
    """The bounds of a stitch grid's relative accuracy: its accuracy over the end network's own, both
    recomputed on the same resampled images (so their correlation is kept)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = accuracy / end_accuracy[:, None, None]
    lower, upper = percentile_interval(np.where(np.isfinite(ratios), ratios, np.nan), settings.level)
    return {"lower": _nan_as_none(lower), "upper": _nan_as_none(upper), "interval": settings.spec.record()}


#: the scalars with per-image hits, by unit kind: metric → the hits' array in the unit's statistics
SCALAR_HITS = {
    "train": {"test_acc": "hits"},
    "network": {"test_acc": "hits"},
    "stitch": {"end_accuracy": "end_hits", "front_accuracy": "front_hits"},
}


def scalar_intervals(
    study_dir: str | Path, record: UnitRecord, settings: UncertaintySettings
) -> dict[str, tuple[float, float]]:
    """The percentile intervals of the unit's accuracies that per-image hits cover (a network's ``test_acc``,
    a stitch unit's donors' ``end_accuracy`` / ``front_accuracy``); none with the bootstrap off or without hits."""
    keys = SCALAR_HITS.get(record.kind)
    stats = load_statistics(study_dir, record) if keys and settings.bootstrap else None
    if stats is None:
        return {}
    counts = Resamples(settings.bootstrap, settings.seed)
    return {
        name: tuple(
            float(v)
            for v in percentile_interval(mean_samples(stats[key], counts(stats[key].shape[-1])), settings.level)
        )
        for name, key in keys.items()
        if key in stats
    }


def accuracy_intervals(
    records: Sequence[UnitRecord], study_dir: str | Path, findings: Findings, settings: UncertaintySettings
) -> Findings:
    """Beside each ``end accuracy`` a finding's numbers show (the end network's accuracy on a grid's test
    images), its interval as ``end accuracy interval`` ([lower, upper]; :func:`scalar_intervals`). Returns
    ``findings``."""
    by_label = {r.label: r for r in records}

    def annotate(numbers: dict[str, Any]) -> None:
        record = by_label.get(numbers.get("grid")) if isinstance(numbers.get("grid"), str) else None
        if record is not None and "end accuracy" in numbers:
            bounds = scalar_intervals(study_dir, record, settings).get("end_accuracy")
            if bounds:
                numbers["end accuracy interval"] = list(bounds)

    for f in findings.findings:
        annotate(f.numbers)
        for entry in f.numbers.get("per pair") or []:
            annotate(entry)
    return findings


def _nan_as_none(grid: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if np.isfinite(v) else None for v in row] for row in grid]


def verdict_robustness(
    records: Sequence[UnitRecord],
    study_dir: str | Path,
    findings: Findings,
    findings_settings: dict[str, Any] | None,
    settings: UncertaintySettings,
) -> Findings:
    """Annotate each finding with the fraction of ``settings.verdict_resamples`` bootstrap resamples in which
    its verdict comes out the same, or why it was not resampled (:func:`~.robustness.resampled_verdicts`);
    and the end networks' accuracies it shows with their intervals (:func:`accuracy_intervals`). Returns
    ``findings``."""
    accuracy_intervals(records, study_dir, findings, settings)
    return resampled_verdicts(
        records, study_dir, findings, findings_settings, settings.verdict_resamples, settings.seed
    )


__all__ = [
    "Resamples",
    "UncertaintySettings",
    "accuracy_intervals",
    "interval_matrices",
    "mean_samples",
    "ratio_samples",
    "scalar_intervals",
    "verdict_robustness",
]
