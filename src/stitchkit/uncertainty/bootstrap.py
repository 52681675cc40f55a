"""The bootstrap's shared pieces: which samples each resample draws, and percentile intervals.

A resample is stored as COUNTS, not indices: ``counts[b, i]`` is how often sample ``i`` is drawn in
resample ``b`` (each row sums to ``n``). A statistic that is a mean or a ratio of sums is then one
matrix product over all resamples at once (``counts @ values / n``), with no Python loop over
resamples. The same ``(n, resamples, seed)`` gives the same counts everywhere, so every cell of a grid,
and every unit measured on the same test images, is resampled with the same images: differences
between cells get intervals too, and a verdict can be recomputed resample by resample.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np

#: the defaults of every command and of a study's [uncertainty] section
DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class BootstrapSpec:
    """How intervals are made: ``resamples`` (0: none), the confidence ``level``, the ``seed``."""

    resamples: int = DEFAULT_RESAMPLES
    level: float = DEFAULT_LEVEL
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return self.resamples > 0

    def record(self) -> dict:
        """What a result records of its intervals (``Matrix.interval``)."""
        return {"method": "percentile bootstrap", "resamples": self.resamples, "level": self.level, "seed": self.seed}


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n)`` int32 counts of a nonparametric bootstrap of ``n`` samples (each row a
    multinomial draw of ``n`` with equal probabilities), the same for the same arguments. Drawn once
    and shared (read-only): every cell of a grid and every unit on the same images asks for them."""
    if n < 1 or resamples < 1:
        raise ValueError(f"a bootstrap needs at least one sample and one resample, got n={n}, resamples={resamples}")
    return _draw(int(n), int(resamples), int(seed))


@functools.lru_cache(maxsize=8)
def _draw(n: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, n, 0x5EED])
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.int32)
    counts.flags.writeable = False
    return counts


def percentile_interval(
    samples: np.ndarray, level: float = DEFAULT_LEVEL, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap ``samples`` along ``axis`` (the resamples): the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles; NaN where every resample is NaN (a resample
    with a NaN is left out)."""
    if not 0 < level < 1:
        raise ValueError(f"the confidence level must be in (0, 1), got {level}")
    samples = np.asarray(samples, dtype=float)
    lo, hi = (1 - level) / 2, (1 + level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells give NaN, as documented
        return np.nanquantile(samples, lo, axis=axis), np.nanquantile(samples, hi, axis=axis)
