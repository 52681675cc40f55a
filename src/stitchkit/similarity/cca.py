"""The CCA family: canonical correlations, mean CCA, SVCCA and projection-weighted CCA (PWCCA).

**Canonical correlations** of X (n × p) and Y (n × q) are the cosines of the principal angles between
the column spaces of the centred matrices (Björck & Golub 1973): with thin SVDs X̄ = U_X S_X V_Xᵀ,
Ȳ = U_Y S_Y V_Yᵀ truncated to their numerical ranks r_X, r_Y (singular values above
``rcond · s_max``, numpy's ``max(n, p)·eps`` by default), ρ = singular values of U_XᵀU_Y. This is the
QR/SVD route, not the whitened covariance (AAᵀ)^{-½}: no squaring of the condition number, and
collinear features are dropped instead of being amplified by 1/√λ.

Number of canonical pairs: m = min(p, q, n − 1) (centred data has rank at most n − 1); the correlations
beyond min(r_X, r_Y) are 0 (features that are linear combinations of others carry no extra direction).

**Degeneracy when features ≥ samples.** If r_X = n − 1, the column space of X̄ is the whole
(n − 1)-dimensional space of centred vectors, so it contains Ȳ's and *every* canonical correlation is 1:
mean CCA = 1 and PWCCA = 0 for unrelated data. CCA-family values are only informative for n ≫ p, q —
which is why the original uses every spatial position as a data point (``positions`` policy).

* **mean_cca** — Σρᵢ / m. Invariant to invertible linear maps (and so to everything below them).
* **svcca** (Raghu et al., NeurIPS 2017) — keep the top-k singular directions of each centred matrix,
  k the smallest number explaining ``variance`` (0.99) of the variance (or ``n_components``), then mean
  CCA of the reduced matrices U_k S_k. Not invariant to invertible linear maps: they change which
  directions carry 99% of the variance.
* **pwcca** (Morcos, Raghu & Bengio, NeurIPS 2018; the conventions of Ding et al.'s code, seed spec 1.7
  step 5) — a *distance*: 1 − Σᵢ wᵢρᵢ over the canonical variates hᵢ of X (unit vectors, hᵢ = U_X pᵢ
  with U_XᵀU_Y = P diag(ρ) Rᵀ), weights wᵢ = Σⱼ |⟨hᵢ, x̄ⱼ⟩| (the projections of X's centred features
  x̄ⱼ on hᵢ, i.e. ‖X̄ᵀhᵢ‖₁) normalised to sum to 1. Ding et al. whiten with (AAᵀ)^{-½} and take
  U of the SVD of (AAᵀ)^{-½}ABᵀ(BBᵀ)^{-½}; that gives the same hᵢ = U_X pᵢ (proof: (AAᵀ)^{-½}A = V_X U_Xᵀ).
  Their division of each matrix by its Frobenius norm cancels in the normalised weights. Weights come
  from X only, so PWCCA is *not symmetric*, and the ℓ₁ norm over X's features makes it *not orthogonally
  invariant* in X. When X has more independent directions than Y (e.g. Y a low-rank truncation of X),
  X's variates beyond Y's rank have ρ = 0 and still count in the weights, so deleting principal
  components raises the distance. When several ρ coincide (or are 0), the variates within that block are
  any orthonormal basis of it and the ℓ₁ weights depend on the basis the SVD returns — a property of
  PWCCA, shared by the original.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..declarations import declare
from ..errors import StitchkitError
from .base import Measure, Prepared, as_matrix, centre, check_same_rows, clamp, fmt_shape, rank_tolerance

_CCA_POLICY = "positions_or_pool"


@dataclass
class Subspace(Prepared):
    """Orthonormal basis ``u`` (n × r) of the centred column space, singular values ``s`` (r,) and right
    singular vectors ``v`` (d × r), r the numerical rank."""

    u: Tensor | None = None
    s: Tensor | None = None
    v: Tensor | None = None

    @property
    def rank(self) -> int:
        return int(self.s.numel())


def subspace(x: Tensor, rcond: float | None = None, what: str = "CCA") -> Subspace:
    """Thin SVD of the centred matrix, truncated to its numerical rank."""
    n, d = x.shape
    u, s, vh = torch.linalg.svd(centre(x), full_matrices=False)
    r = int((s > rank_tolerance(s, x.shape, rcond)).sum())
    if r == 0 or float(s[0]) == 0.0:
        raise StitchkitError(f"{what} is undefined for a matrix of shape {fmt_shape(x.shape)} whose rows are all equal")
    return Subspace(n, d, u=u[:, :r], s=s[:r], v=vh[:r].T)


def _correlations(a: Subspace, b: Subspace) -> Tensor:
    return torch.linalg.svdvals(a.u.T @ b.u).clamp(0.0, 1.0)


def n_canonical_pairs(a: Prepared, b: Prepared) -> int:
    return min(a.d, b.d, a.n - 1)


def canonical_correlations(x, y, *, rcond: float | None = None, dtype=torch.float64) -> Tensor:
    """The m = min(p, q, n − 1) canonical correlations of X and Y, descending (zeros beyond the ranks)."""
    cca = MeanCCA(rcond=rcond, dtype=dtype)
    x = as_matrix(x, cca.dtype, name="X")
    y = as_matrix(y, cca.dtype, device=x.device, name="Y")
    check_same_rows(x.shape, y.shape, "canonical correlation analysis")
    a, b = cca.prepare(x), cca.prepare(y)
    rho = _correlations(a, b)
    m = n_canonical_pairs(a, b)
    out = torch.zeros(m, dtype=rho.dtype, device=rho.device)
    out[: min(m, rho.numel())] = rho[:m]
    return out


class _CCABase(Measure):
    def __init__(self, *, rcond: float | None = None, dtype=torch.float64):
        super().__init__(dtype=dtype)
        if rcond is not None and not (isinstance(rcond, (int, float)) and rcond >= 0):
            raise StitchkitError(f"rcond must be None or a non-negative number, got {rcond!r}")
        self.rcond = rcond

    def prepare(self, x) -> Subspace:
        return subspace(self._matrix(x), self.rcond, self.info.name)


@declare(
    "measure",
    "mean_cca",
    order=4,
    kind="similarity",
    range=(0.0, 1.0),
    symmetric=True,
    invariances={"orthogonal", "isotropic_scaling", "translation", "invertible_linear", "permutation"},
    description="mean canonical correlation over min(p, q, n−1) pairs; 1 for any data when features ≥ samples",
    citation="Hotelling, Relations between two sets of variates, Biometrika 1936; Raghu et al., NeurIPS 2017",
    original_policy=_CCA_POLICY,
    requires_models=False,
)
class MeanCCA(_CCABase):
    def compare(self, a: Subspace, b: Subspace) -> float:
        self._check_pair(a, b)
        return clamp(float(_correlations(a, b).sum()) / n_canonical_pairs(a, b), *self.info.range)


@declare(
    "measure",
    "svcca",
    order=5,
    kind="similarity",
    range=(0.0, 1.0),
    symmetric=True,
    invariances={"orthogonal", "isotropic_scaling", "translation", "permutation"},
    description="SVCCA: mean CCA of the top singular directions explaining 99% of each matrix's variance",
    citation="Raghu, Gilmer, Yosinski & Sohl-Dickstein, SVCCA, NeurIPS 2017",
    original_policy=_CCA_POLICY,
    requires_models=False,
)
class SVCCA(MeanCCA):
    def __init__(
        self,
        *,
        variance: float = 0.99,
        n_components: int | None = None,
        rcond: float | None = None,
        dtype=torch.float64,
    ):
        super().__init__(rcond=rcond, dtype=dtype)
        if not (isinstance(variance, (int, float)) and 0 < variance <= 1):
            raise StitchkitError(
                f"variance (the fraction of variance the kept directions explain) must be in (0, 1], got {variance!r}"
            )
        if n_components is not None and (
            isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1
        ):
            raise StitchkitError(f"n_components must be None or a positive integer, got {n_components!r}")
        self.variance = float(variance)
        self.n_components = n_components

    def kept_directions(self, sub: Subspace) -> int:
        """k: ``n_components`` (at most the rank), or the fewest top directions explaining ``variance``."""
        if self.n_components is not None:
            return min(self.n_components, sub.rank)
        energy = torch.cumsum(sub.s**2, 0)
        target = self.variance * float(energy[-1]) * (1 - 1e-12)  # 99% of the variance, up to rounding
        return min(int((energy < target).sum()) + 1, sub.rank)

    def prepare(self, x) -> Subspace:
        sub = super().prepare(x)
        k = self.kept_directions(sub)
        # The reduced matrix U_k S_k has k features and the column space span(U_k).
        return Subspace(sub.n, k, u=sub.u[:, :k], s=sub.s[:k], v=torch.eye(k, dtype=sub.s.dtype, device=sub.s.device))


@declare(
    "measure",
    "pwcca",
    order=6,
    kind="distance",
    range=(0.0, 1.0),
    symmetric=False,
    invariances={"isotropic_scaling", "translation", "permutation"},
    description="projection-weighted CCA distance 1 − Σ wᵢρᵢ, weights from the projections of X's features on its "
    "canonical variates (Ding et al.'s conventions); 0 for any data when features ≥ samples",
    citation="Morcos, Raghu & Bengio, Insights on representational similarity in neural networks with canonical "
    "correlation, NeurIPS 2018; Ding, Denain & Steinhardt, Grounding Representation Similarity with "
    "Statistical Testing, NeurIPS 2021",
    original_policy=_CCA_POLICY,
    requires_models=False,
)
class PWCCA(_CCABase):
    def weights_and_correlations(self, a: Subspace, b: Subspace) -> tuple[Tensor, Tensor]:
        """(wᵢ, ρᵢ) over X's first min(m, r_X) canonical variates (ρ padded with zeros)."""
        self._check_pair(a, b)
        p, rho, _ = torch.linalg.svd(a.u.T @ b.u, full_matrices=True)  # p: r_X × r_X
        k = min(n_canonical_pairs(a, b), a.rank)
        rho_full = torch.zeros(k, dtype=rho.dtype, device=rho.device)
        rho_full[: min(k, rho.numel())] = rho[:k].clamp(0.0, 1.0)
        # X̄ᵀhᵢ = V_X S_X U_Xᵀ U_X pᵢ = V_X S_X pᵢ: the projections of X's features on variate i.
        projections = (a.v * a.s) @ p[:, :k]
        w = projections.abs().sum(dim=0)
        return w / w.sum(), rho_full

    def compare(self, a: Subspace, b: Subspace) -> float:
        w, rho = self.weights_and_correlations(a, b)
        return clamp(1.0 - float(w @ rho), *self.info.range)
