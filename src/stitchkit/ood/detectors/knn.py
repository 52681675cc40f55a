"""The k-NN detector: distance to the k-th nearest training feature after L2 normalisation (Sun, Ming,
Zhu & Li, "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022). Training-free: no
network per layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...activations.pooling import POOLINGS, pool_features
from ...declarations import declare
from ...errors import StitchkitError, unknown_name
from .base import POOL, Detector, fit_batches


@declare(
    "detector",
    "knn",
    order=3,
    trains=False,
    options={
        "k": {"flag": "--knn-k", "type": "int", "default": 50, "min": 1, "help": "k of the k-NN detector"},
        "pool": POOL,
    },
    help="distance to the k-th nearest L2-normalised ID feature (Sun et al. 2022)",
)
class KNNDetector(Detector):
    """Distance to the ``k``-th nearest ID feature, features L2-normalised (Sun et al. 2022).

    ``max_fit`` caps the stored bank (the first samples seen; pass a random subset to ``fit`` for a
    random bank). Sun et al. use k = 50 for CIFAR-10 with the full training set; with small banks use a
    smaller k.
    """

    score_name = "distance to the k-th nearest normalised ID feature"

    def __init__(
        self, k: int = 50, pool: str = "avg", normalize: bool = True, max_fit: int | None = None, chunk: int = 4096
    ):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise StitchkitError(f"k must be a positive integer, got {k!r}")
        if pool not in POOLINGS:
            raise unknown_name("pooling", pool, POOLINGS)
        self.k, self.pool, self.normalize, self.max_fit, self.chunk = k, pool, bool(normalize), max_fit, int(chunk)
        self.bank: Tensor | None = None

    def _features(self, x: Tensor) -> Tensor:
        f = pool_features(x, self.pool).float().cpu()
        return nn.functional.normalize(f, dim=1) if self.normalize else f

    @torch.no_grad()
    def fit(self, data: Any, labels: Any = None) -> KNNDetector:
        parts, n = [], 0
        for x, _ in fit_batches(data, labels):
            f = self._features(x)
            if self.max_fit is not None:
                f = f[: max(self.max_fit - n, 0)]
            if f.shape[0]:
                parts.append(f)
                n += f.shape[0]
            if self.max_fit is not None and n >= self.max_fit:
                break
        if not parts:
            raise StitchkitError("the k-NN detector got no fitting samples")
        self.bank = torch.cat(parts)
        if self.bank.shape[0] < self.k:
            raise StitchkitError(
                f"the k-NN detector needs at least k = {self.k} fitting samples, got {self.bank.shape[0]}; lower k"
            )
        return self

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        if self.bank is None:
            raise StitchkitError("fit the k-NN detector on ID activations before scoring")
        f = self._features(x)
        if f.shape[1] != self.bank.shape[1]:
            raise StitchkitError(f"the k-NN detector was fitted on {self.bank.shape[1]} features, got {f.shape[1]}")
        best: Tensor | None = None  # the k smallest distances so far, (B, k)
        for start in range(0, self.bank.shape[0], self.chunk):
            d = torch.cdist(f, self.bank[start : start + self.chunk])
            merged = d if best is None else torch.cat([best, d], dim=1)
            best = merged.topk(min(self.k, merged.shape[1]), dim=1, largest=False).values
        return best[:, self.k - 1]

    def describe(self) -> dict[str, Any]:
        n = 0 if self.bank is None else int(self.bank.shape[0])
        return {**super().describe(), "k": self.k, "pool": self.pool, "normalize": self.normalize, "n_fit": n}
