"""How well a dissimilarity orders pairs by their functional difference (Ding et al. 2021, section 3).

For pairs (reference, candidate) with dissimilarity dᵢ and functional difference fᵢ (the absolute
difference of a functional score such as probe accuracy), a good measure ranks the pairs as f does:

* **Spearman ρ** and **Kendall τ** (τ-b, which corrects for ties) between d and f, each with the
  one-sided p-value of the alternative "positively correlated" (``scipy.stats.spearmanr`` /
  ``kendalltau`` with ``alternative="greater"``);
* the **fraction of badly ordered pairs**: among pairs of points (i, j) whose functional differences
  differ (fᵢ ≠ fⱼ), those the dissimilarity orders the other way, (dᵢ − dⱼ)(fᵢ − fⱼ) < 0, with a tie
  in d (dᵢ = dⱼ) counted as half a bad pair. Without ties this is (1 − τ_a)/2 over the ordered pairs.
  0 is a perfect ordering, 0.5 is chance.

Undefined statistics (fewer than 3 points, or a constant d or f) are NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from ..errors import StitchkitError


@dataclass(frozen=True)
class RankAgreement:
    """Agreement between a dissimilarity and a functional difference over ``n`` points."""

    n: int
    spearman: float
    spearman_p: float
    kendall: float
    kendall_p: float
    bad_fraction: float
    #: pairs of points with different functional differences (the denominator of bad_fraction)
    ordered_pairs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _vectors(dissimilarity: Sequence[float], functional_difference: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(dissimilarity, dtype=np.float64).reshape(-1)
    f = np.asarray(functional_difference, dtype=np.float64).reshape(-1)
    if d.shape != f.shape:
        raise StitchkitError(f"need one functional difference per dissimilarity, got {d.size} and {f.size}")
    if not (np.isfinite(d).all() and np.isfinite(f).all()):
        raise StitchkitError("dissimilarities and functional differences must be finite numbers")
    return d, f


def bad_pair_fraction(dissimilarity: Sequence[float], functional_difference: Sequence[float]) -> tuple[float, int]:
    """(fraction of badly ordered pairs, number of pairs with different functional differences); see
    the module docstring. NaN when no pair has different functional differences."""
    d, f = _vectors(dissimilarity, functional_difference)
    i, j = np.triu_indices(d.size, k=1)
    dd, ff = d[i] - d[j], f[i] - f[j]
    ordered = ff != 0
    count = int(ordered.sum())
    if count == 0:
        return math.nan, 0
    bad = (dd[ordered] * ff[ordered] < 0).sum() + 0.5 * (dd[ordered] == 0).sum()
    return float(bad) / count, count


def rank_agreement(dissimilarity: Sequence[float], functional_difference: Sequence[float]) -> RankAgreement:
    """Spearman ρ, Kendall τ (one-sided p-values) and the fraction of badly ordered pairs."""
    d, f = _vectors(dissimilarity, functional_difference)
    nan = math.nan
    rho = rho_p = tau = tau_p = nan
    if d.size >= 3 and np.ptp(d) > 0 and np.ptp(f) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = sps.spearmanr(d, f, alternative="greater")
            k = sps.kendalltau(d, f, alternative="greater")
        rho, rho_p, tau, tau_p = float(s.statistic), float(s.pvalue), float(k.statistic), float(k.pvalue)
    bad, ordered = bad_pair_fraction(d, f)
    return RankAgreement(int(d.size), rho, rho_p, tau, tau_p, bad, ordered)
