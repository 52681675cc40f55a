"""The Mahalanobis detector: class-conditional Gaussians with one shared covariance on pooled
activations; score = min over classes of the squared Mahalanobis distance (Lee, Lee, Lee & Shin, "A Simple
Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018, eq. 2).
Without their input pre-processing and layer ensemble. Training-free: no network per layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...activations.pooling import POOLINGS, pool_features
from ...declarations import declare
from ...errors import StitchkitError, unknown_name
from .base import POOL, Detector, fit_batches


@declare(
    "detector",
    "mahalanobis",
    order=2,
    trains=False,
    options={"pool": POOL},
    help="min squared Mahalanobis distance to a class mean, one shared covariance (Lee et al. 2018)",
)
class MahalanobisDetector(Detector):
    """Class-conditional Gaussians with a shared (tied) covariance on pooled activations (Lee et al.
    2018). Score = ``min_c (x − μ_c)ᵀ Σ⁺ (x − μ_c)``.

    Statistics are streamed in float64 (per-class sums, the total second moment), so any number of
    fitting samples can be used. ``shrinkage`` adds ``shrinkage · mean(diag Σ) · I`` before inverting
    (0 = the pseudo-inverse of the plain estimate).
    """

    score_name = "min squared Mahalanobis distance to a class mean"
    needs_labels = True

    def __init__(self, pool: str = "avg", shrinkage: float = 1e-6):
        if pool not in POOLINGS:
            raise unknown_name("pooling", pool, POOLINGS)
        if shrinkage < 0:
            raise StitchkitError(f"shrinkage must be non-negative, got {shrinkage}")
        self.pool, self.shrinkage = pool, float(shrinkage)
        self.means: Tensor | None = None
        self.precision: Tensor | None = None
        self.n_fit = 0

    @torch.no_grad()
    def fit(self, data: Any, labels: Any = None) -> MahalanobisDetector:
        sums: dict[int, Tensor] = {}
        counts: dict[int, int] = {}
        second: Tensor | None = None
        n = 0
        for x, y in fit_batches(data, labels):
            if y is None:
                raise StitchkitError("the Mahalanobis detector needs class labels to fit (class-conditional means)")
            f = pool_features(x, self.pool).double().cpu()
            y = torch.as_tensor(y).cpu().long()
            second = f.T @ f if second is None else second + f.T @ f
            n += f.shape[0]
            for c in y.unique().tolist():
                rows = f[y == c]
                sums[c] = sums[c] + rows.sum(0) if c in sums else rows.sum(0)
                counts[c] = counts.get(c, 0) + rows.shape[0]
        if n < 2 or second is None:
            raise StitchkitError("the Mahalanobis detector needs at least two fitting samples")
        classes = sorted(sums)
        means = torch.stack([sums[c] / counts[c] for c in classes])
        # Shared covariance: Σ = (Σ_i x xᵀ − Σ_c n_c μ_c μ_cᵀ) / N (within-class scatter).
        between = sum(counts[c] * torch.outer(means[i], means[i]) for i, c in enumerate(classes))
        cov = (second - between) / n
        if self.shrinkage > 0:
            scale = self.shrinkage * max(float(cov.diagonal().mean()), 1e-12)
            cov = cov + scale * torch.eye(cov.shape[0], dtype=cov.dtype)
        self.means = means
        self.precision = torch.linalg.pinv(cov, hermitian=True)
        self.classes = classes
        self.n_fit = n
        return self

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        if self.means is None or self.precision is None:
            raise StitchkitError("fit the Mahalanobis detector on ID activations before scoring")
        f = pool_features(x, self.pool).double().cpu()
        if f.shape[1] != self.means.shape[1]:
            raise StitchkitError(
                f"the Mahalanobis detector was fitted on {self.means.shape[1]} features, got {f.shape[1]}"
            )
        diff = f[:, None, :] - self.means[None, :, :]  # (B, C, F)
        d2 = torch.einsum("bcf,fg,bcg->bc", diff, self.precision, diff)
        return d2.min(dim=1).values.float()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pool": self.pool, "shrinkage": self.shrinkage, "n_fit": self.n_fit}
