"""Coverage of the bootstrap's percentile intervals on synthetic data with a known truth (issue 19,
item 6), shared by ``test_uncertainty_stats.py`` and ``benchmarks/coverage_check.py``.

Each scenario draws ``repetitions`` independent data sets from a known distribution, bootstraps each
with its own seeded counts (``resample_counts(n, resamples, seed=repetition)``), and counts how often
the ``level`` interval contains the true value. With R repetitions the coverage of a correct 95%
interval has binomial sd √(0.95·0.05/R): 1.5 points at R = 200, so a correct method lands in
[0.91, 0.98] except with probability ~1% (−2.6 sd … +2 sd; the percentile interval is known to
under-cover slightly at small n, hence the wider low side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stitchkit.uncertainty.bootstrap import resample_counts
from stitchkit.uncertainty.intervals import interval, mean_samples, ood_metric_samples, ratio_samples

#: the accepted coverage of a 95% interval over 200 repetitions (see the module doc)
COVERAGE_BAND = (0.91, 0.98)


@dataclass
class Coverage:
    name: str
    truth: float
    coverage: float
    mean_width: float
    repetitions: int
    resamples: int

    def line(self) -> str:
        return (
            f"{self.name:<42} truth {self.truth:.4f}  coverage {self.coverage:.3f} of {self.repetitions} "
            f"(B = {self.resamples})  mean width {self.mean_width:.4f}"
        )


def _covers(truth: float, samples: np.ndarray, level: float) -> tuple[bool, float]:
    lower, upper = interval(samples, level)
    return bool(lower <= truth <= upper), float(upper - lower)


def _run(name, truth, one, repetitions, resamples, level, seed) -> Coverage:
    """``one(rng, repetition) -> (B,) samples`` for each repetition; the fraction of intervals holding ``truth``."""
    rng = np.random.default_rng(seed)
    hits = [_covers(truth, one(rng, r), level) for r in range(repetitions)]
    return Coverage(
        name, truth, float(np.mean([h for h, _ in hits])), float(np.mean([w for _, w in hits])), repetitions, resamples
    )


def bernoulli_accuracy(repetitions=200, resamples=500, level=0.95, p=0.8, n=400, seed=0) -> Coverage:
    """The accuracy of n hits, each right with probability p."""

    def one(rng, r):
        return mean_samples(rng.random(n) < p, resample_counts(n, resamples, seed=r))

    return _run(f"Bernoulli accuracy (p = {p}, n = {n})", p, one, repetitions, resamples, level, seed)


def residual_ratio(repetitions=200, resamples=500, level=0.95, ratio=0.3, n=400, seed=1) -> Coverage:
    """A residual-like ratio of sums: denominators Gamma(2, 1) (squared norms), numerators their
    product with an independent Exponential of mean ``ratio`` (squared errors), so that
    E[num] / E[den] = ratio."""

    def one(rng, r):
        den = rng.gamma(2.0, 1.0, n)
        return ratio_samples(den * rng.exponential(ratio, n), den, resample_counts(n, resamples, seed=r))

    return _run(f"ratio of sums (ratio = {ratio}, n = {n})", ratio, one, repetitions, resamples, level, seed)


def gaussian_auroc(repetitions=200, resamples=500, level=0.95, delta=1.0, n=200, m=200, seed=2) -> Coverage:
    """AUROC of independent ID scores N(0, 1) and OOD scores N(δ, 1): Φ(δ/√2); each side resampled on its own."""

    def one(rng, r):
        id_s, ood_s = rng.normal(0.0, 1.0, n), rng.normal(delta, 1.0, m)
        counts_id, counts_ood = resample_counts(n, resamples, seed=r), resample_counts(m, resamples, seed=10_000 + r)
        return ood_metric_samples(id_s, ood_s, counts_id, counts_ood)["auroc"]

    truth = 0.5 * (1.0 + math.erf(delta / 2.0))  # Φ(δ/√2) = ½(1 + erf(δ/2))
    return _run(
        f"AUROC, unpaired Gaussians (δ = {delta}, n = {n}, m = {m})", truth, one, repetitions, resamples, level, seed
    )


def paired_gaussian_auroc(repetitions=200, resamples=500, level=0.95, delta=1.0, rho=0.6, n=200, seed=3) -> Coverage:
    """AUROC of paired scores of the same images (genuine Z, stitched ρZ + √(1−ρ²)E + δ): marginally
    N(0, 1) and N(δ, 1), so the AUROC of the two distributions is still Φ(δ/√2); one counts matrix
    resamples both sides, as a study's OOD unit does."""

    def one(rng, r):
        z = rng.normal(size=n)
        stitched = rho * z + math.sqrt(1 - rho**2) * rng.normal(size=n) + delta
        return ood_metric_samples(z, stitched, resample_counts(n, resamples, seed=r))["auroc"]

    truth = 0.5 * (1.0 + math.erf(delta / 2.0))
    return _run(
        f"AUROC, paired Gaussians (δ = {delta}, ρ = {rho}, n = {n})", truth, one, repetitions, resamples, level, seed
    )


SCENARIOS = (bernoulli_accuracy, residual_ratio, gaussian_auroc, paired_gaussian_auroc)
