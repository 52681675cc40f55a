"""Orthogonal Procrustes distance with Ding et al.'s normalisation (seed spec 1.7 step 6).

Centre every feature, divide each matrix by its Frobenius norm (‖A‖_F = ‖B‖_F = 1), then

    d(A, B) = min over orthogonal R of ‖AR − B‖²_F = ‖A‖²_F + ‖B‖²_F − 2‖AᵀB‖_* = 2 − 2‖AᵀB‖_*,

‖·‖_* the nuclear norm (sum of singular values; Schönemann 1966). With different feature counts p ≠ q the
minimum is over p × q matrices with orthonormal columns or rows (zero-padding the narrower matrix); the
closed form is the same. Range [0, 2]; 0 iff B = AR; symmetric; invariant to orthogonal maps, isotropic
scaling, translation and feature permutations, not to invertible linear maps. Unlike CCA it does not
collapse when features ≥ samples.

Preparation keeps, per matrix, an n × r factor F with AᵀB = V_A F_AᵀF_B V_Bᵀ (V with orthonormal
columns), so that ‖AᵀB‖_* = ‖F_AᵀF_B‖_*: the normalised data itself when p ≤ n, else U·S of its thin SVD
(r ≤ n columns instead of p).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..declarations import declare
from ..errors import StitchkitError
from .base import Measure, Prepared, centre, clamp, fmt_shape


@dataclass
class NormalisedFactor(Prepared):
    factor: Tensor | None = None  # n × r with FᵀF having the spectrum of AᵀA, ‖F‖_F = 1


@declare(
    "measure",
    "procrustes",
    order=7,
    kind="distance",
    range=(0.0, 2.0),
    symmetric=True,
    invariances={"orthogonal", "isotropic_scaling", "translation", "permutation"},
    description="orthogonal Procrustes distance ‖A‖² + ‖B‖² − 2‖AᵀB‖_* on centred, Frobenius-normalised A, B",
    citation="Schönemann, A generalized solution of the orthogonal Procrustes problem, Psychometrika 1966; "
    "Ding, Denain & Steinhardt, Grounding Representation Similarity with Statistical Testing, NeurIPS 2021",
    original_policy="positions_or_pool",
    requires_models=False,
)
class Procrustes(Measure):
    def prepare(self, x) -> NormalisedFactor:
        x = self._matrix(x)
        n, d = x.shape
        a = centre(x)
        norm = torch.linalg.matrix_norm(a)
        if float(norm) == 0.0:
            raise StitchkitError(
                f"the Procrustes distance is undefined for a matrix of shape {fmt_shape(x.shape)} whose rows are all "
                f"equal"
            )
        a = a / norm
        if d > n:
            u, s, _ = torch.linalg.svd(a, full_matrices=False)
            a = u * s
        return NormalisedFactor(n, d, factor=a)

    def compare(self, a: NormalisedFactor, b: NormalisedFactor) -> float:
        self._check_pair(a, b)
        nuclear = torch.linalg.svdvals(a.factor.T @ b.factor).sum()
        return clamp(2.0 - 2.0 * float(nuclear), *self.info.range)
