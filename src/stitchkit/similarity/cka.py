"""Centred kernel alignment (CKA): linear (biased and debiased HSIC), RBF, and streamed over mini-batches.

**Linear CKA** (Kornblith et al., ICML 2019, eq. in section 3): with column-centred X (n × p), Y (n × q),

    CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F · ‖YᵀY‖_F)  =  ⟨K̄, L̄⟩_F / (‖K̄‖_F · ‖L̄‖_F),

the second (Gram) form with K = XXᵀ, L = YYᵀ and K̄ = HKH (H = I − 11ᵀ/n), since
⟨HKH, HLH⟩ = ‖YᵀX‖²_F for centred data. The feature form costs O(n·(p + q)²) and O(p²) memory, the
Gram form O(n²·(p + q)) and O(n²) memory; ``form="auto"`` prepares each matrix in the feature form when
p ≤ n and in the Gram form when p > n (a pair of one of each is compared through ⟨K̄, YYᵀ⟩ =
Σ (K̄Y) ∘ Y). Invariant to orthogonal maps, isotropic scaling and translation, **not** to invertible
linear maps. The biased HSIC makes it large for *unrelated* data when features ≫ samples (independent
Gaussians with n = 50: about 0.17 at p = q = 10, about 0.95 at p = q = 1000).

**Debiased linear CKA** replaces HSIC by the unbiased estimator of Song et al. (JMLR 2012, eq. 5), as
Kornblith et al. (section 3, "debiased") and Nguyen et al. (ICLR 2021) do: with K̃, L̃ the Gram matrices
with their diagonals set to 0,

    HSIC₁(K, L) = [ tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1) / ((n−1)(n−2)) − 2/(n−2) · 1ᵀK̃L̃1 ] / (n(n−3)),

and CKA₁ = HSIC₁(K, L) / sqrt(HSIC₁(K, K) HSIC₁(L, L)). Equivalently (Székely & Rizzo 2014)
n(n−3)·HSIC₁(K, L) = ⟨U(K), U(L)⟩_F with the U-centred matrix

    U(K)ᵢⱼ = K̃ᵢⱼ − rᵢ/(n−2) − rⱼ/(n−2) + s/((n−1)(n−2)) for i ≠ j, U(K)ᵢᵢ = 0,   rᵢ = Σⱼ K̃ᵢⱼ, s = Σᵢ rᵢ,

which is the Gram form used here. U(K) has zero row sums and removes every term aᵢ + aⱼ + c, so
⟨U(K), U(L)⟩ = ⟨U(K), L⟩ off the diagonal: the estimator is exactly translation invariant, lies in
[−1, 1] (Cauchy–Schwarz), and can be negative. In the feature form (data centred first, which changes
nothing), with kᵢ = ‖xᵢ‖², lᵢ = ‖yᵢ‖²: tr(K̃L̃) = ‖YᵀX‖²_F − k·l, 1ᵀK̃1 = −Σkᵢ, 1ᵀK̃L̃1 = k·l.
Needs n ≥ 4.

**RBF CKA** (Kornblith et al. 2019): K = exp(−‖xᵢ − xⱼ‖² / (2 (σ·m)²)) with m the median distance over the
n(n−1)/2 distinct pairs and σ = 0.8 by default (their choice of bandwidth as a fraction of the median
distance); then biased CKA on the Gram matrices. Kornblith et al.'s notebook takes the median of the
*squared* distances over the full n × n matrix (diagonal zeros included), a slightly smaller bandwidth;
the value here follows the paper's wording (σ times the median distance between distinct examples). Invariant to
orthogonal maps, isotropic scaling (the bandwidth
scales with the data) and translation.

**Streaming** (:class:`StreamingCKA`): the biased linear CKA from mini-batches through the feature-space
co-moments XᵀX, YᵀY, XᵀY (float64, merged with Chan et al.'s update, so the result equals the
full-batch value up to rounding, whatever n); or Nguyen et al.'s (2021, section 3.1) *minibatch*
estimator, the ratio of HSIC₁ averaged over mini-batches — an estimator of the same population
quantity as debiased CKA, not equal to the debiased value on the whole set: each batch's HSIC₁ is
unbiased, so the batch size changes the noise (and the small bias of the ratio), not the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..declarations import declare
from ..errors import StitchkitError
from .base import Measure, Prepared, centre, check_same_rows, clamp, fmt_shape
from .policy import to_matrix

FORMS = ("auto", "feature", "gram")


@dataclass
class KernelPrep(Prepared):
    """A matrix prepared for CKA: centred data (feature form) or a centred Gram matrix (Gram form)."""

    x: Tensor | None = None  # centred data, n × d (feature form)
    gram: Tensor | None = None  # centred (biased) or U-centred (debiased) Gram matrix, n × n
    sq_norms: Tensor | None = None  # ‖xᵢ‖² of the centred rows (debiased feature form)
    self_term: float = 0.0  # the cross term of the matrix with itself


def u_centre(k: Tensor) -> Tensor:
    """The U-centred Gram matrix of Székely & Rizzo (2014), see the module docstring."""
    n = k.shape[0]
    k = k.clone()
    k.fill_diagonal_(0)
    row = k.sum(dim=0) / (n - 2)
    row = row - row.sum() / (2 * (n - 1))
    u = k - row[:, None] - row[None, :]
    u.fill_diagonal_(0)
    return u


def double_centre(k: Tensor) -> Tensor:
    """HKH: subtract the row and column means and add back the grand mean."""
    col = k.mean(dim=0, keepdim=True)
    row = k.mean(dim=1, keepdim=True)
    return k - col - row + k.mean()


class _CKA(Measure):
    """CKA from prepared matrices; subclasses build the prepared form."""

    debiased = False

    def _cross(self, a: KernelPrep, b: KernelPrep) -> Tensor:
        """⟨K̄, L̄⟩ (biased) or n(n−3)·HSIC₁ (debiased) from any mix of feature and Gram forms."""
        if a.gram is not None and b.gram is not None:
            return (a.gram * b.gram).sum()
        if a.gram is None and b.gram is None:
            cross = torch.linalg.matrix_norm(a.x.T @ b.x) ** 2
            if self.debiased:
                n = a.n
                kl = a.sq_norms @ b.sq_norms
                cross = cross - kl + a.sq_norms.sum() * b.sq_norms.sum() / ((n - 1) * (n - 2)) - 2.0 * kl / (n - 2)
            return cross
        gram, x = (a.gram, b.x) if a.gram is not None else (b.gram, a.x)
        # ⟨K̄, YYᵀ⟩ = ⟨K̄, L̄⟩ because centring (resp. U-centring) is a projection that K̄ already is in.
        return ((gram @ x) * x).sum()

    def _finish(self, prep: KernelPrep) -> KernelPrep:
        prep.self_term = float(self._cross(prep, prep))
        if not prep.self_term > 0:
            raise StitchkitError(
                f"{self.info.name} is undefined for a matrix of shape ({prep.n}, {prep.d}) whose centred "
                f"kernel is zero (constant data points{' or fewer than 4' if self.debiased else ''})"
            )
        return prep

    def compare(self, a: KernelPrep, b: KernelPrep) -> float:
        self._check_pair(a, b)
        value = float(self._cross(a, b)) / math.sqrt(a.self_term * b.self_term)
        return clamp(value, *self.info.range)


@declare(
    "measure",
    "cka",
    order=1,
    kind="similarity",
    range=(0.0, 1.0),
    symmetric=True,
    invariances={"orthogonal", "isotropic_scaling", "translation", "permutation"},
    description="linear CKA with the biased HSIC: ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on column-centred X, Y",
    citation="Kornblith, Norouzi, Lee & Hinton, Similarity of Neural Network Representations Revisited, ICML 2019",
    original_policy="flatten",
    requires_models=False,
)
class LinearCKA(_CKA):
    def __init__(self, *, form: str = "auto", dtype=torch.float64):
        super().__init__(dtype=dtype)
        if form not in FORMS:
            raise StitchkitError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
        self.form = form

    def prepare(self, x) -> KernelPrep:
        x = self._matrix(x)
        n, d = x.shape
        if self.debiased and n < 4:
            raise StitchkitError(f"debiased CKA needs at least 4 data points, got {n}")
        xc = centre(x)
        if self.form == "gram" or (self.form == "auto" and d > n):
            gram = xc @ xc.T
            prep = KernelPrep(n, d, gram=u_centre(gram) if self.debiased else gram)
        else:
            prep = KernelPrep(n, d, x=xc, sq_norms=(xc * xc).sum(dim=1) if self.debiased else None)
        return self._finish(prep)


@declare(
    "measure",
    "cka_debiased",
    order=2,
    kind="similarity",
    range=(-1.0, 1.0),
    symmetric=True,
    invariances={"orthogonal", "isotropic_scaling", "translation", "permutation"},
    description="linear CKA with the unbiased HSIC estimator of Song et al. 2012 (U-centred Gram matrices); "
    "near 0 for unrelated data even when features ≫ samples; can be negative",
    citation="Song et al., Feature Selection via Dependence Maximization, JMLR 2012; Kornblith et al., ICML 2019; "
    "Nguyen, Raghu & Kornblith, Do Wide and Deep Networks Learn the Same Things?, ICLR 2021",
    original_policy="flatten",
    requires_models=False,
)
class DebiasedLinearCKA(LinearCKA):
    debiased = True


@declare(
    "measure",
    "rbf_cka",
    order=3,
    kind="similarity",
    range=(0.0, 1.0),
    symmetric=True,
    invariances={"orthogonal", "isotropic_scaling", "translation", "permutation"},
    description="CKA with RBF kernels, bandwidth σ × the median pairwise distance (σ = 0.8), biased HSIC",
    citation="Kornblith, Norouzi, Lee & Hinton, Similarity of Neural Network Representations Revisited, ICML 2019",
    original_policy="flatten",
    requires_models=False,
)
class RBFCKA(_CKA):
    def __init__(self, *, sigma: float = 0.8, dtype=torch.float64):
        super().__init__(dtype=dtype)
        if not (isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma > 0 and math.isfinite(sigma)):
            raise StitchkitError(
                f"sigma (the RBF bandwidth as a fraction of the median distance) must be a positive number, got "
                f"{sigma!r}"
            )
        self.sigma = float(sigma)

    def prepare(self, x) -> KernelPrep:
        x = self._matrix(x)
        n, d = x.shape
        xc = centre(x)
        sq = (xc * xc).sum(dim=1)
        d2 = (sq[:, None] + sq[None, :] - 2.0 * (xc @ xc.T)).clamp_min_(0)
        d2.fill_diagonal_(0)
        iu = torch.triu_indices(n, n, offset=1, device=x.device)
        dist = d2[iu[0], iu[1]].sqrt().sort().values
        m = dist.numel()
        median = float(dist[m // 2]) if m % 2 else 0.5 * float(dist[m // 2 - 1] + dist[m // 2])
        if median == 0.0:
            raise StitchkitError(
                f"RBF CKA needs a positive median distance between data points; more than half of the pairs of the "
                f"{n} rows of shape {fmt_shape(x.shape)} coincide"
            )
        gram = torch.exp(-d2 / (2.0 * (self.sigma * median) ** 2))
        return self._finish(KernelPrep(n, d, gram=double_centre(gram)))


class StreamingCKA:
    """Linear CKA accumulated over mini-batches of paired activations, so n is not limited by memory.

    ``estimator="biased"`` (default) accumulates float64 feature-space co-moments (p², q², p·q numbers)
    and :meth:`compute` equals :class:`LinearCKA` on the concatenated batches. ``"minibatch_unbiased"``
    is Nguyen et al.'s estimator: Σ_b HSIC₁(X_b, Y_b) / sqrt(Σ_b HSIC₁(X_b, X_b) · Σ_b HSIC₁(Y_b, Y_b))
    (every batch needs at least 4 rows; memory is one batch's Gram matrices).

    Batches are converted with :func:`~.policy.to_matrix` and ``policy`` ("flatten", the original's
    choice for CKA, by default; 2-D batches are used as they are).

    >>> meter = StreamingCKA()
    >>> for xb, yb in batches: meter.update(xb, yb)
    >>> meter.compute()
    """

    ESTIMATORS = ("biased", "minibatch_unbiased")

    def __init__(self, *, estimator: str = "biased", policy: str = "flatten", device=None):
        if estimator not in self.ESTIMATORS:
            raise StitchkitError(f"estimator must be one of {', '.join(self.ESTIMATORS)}, got {estimator!r}")
        if policy == "auto_original":
            policy = "flatten"  # the original's CKA flattens
        self.estimator = estimator
        self.policy = policy
        self.device = torch.device(device) if device is not None else None
        self.n = 0
        self.n_batches = 0
        self._mean_x = self._mean_y = self._cxx = self._cyy = self._cxy = None
        self._hsic = torch.zeros(3, dtype=torch.float64)  # Σ HSIC₁(X,Y), (X,X), (Y,Y)
        self._debiased = DebiasedLinearCKA(form="auto")

    @torch.no_grad()
    def update(self, x, y) -> None:
        """Add a batch of paired activations (same number of samples)."""
        x = to_matrix(x, self.policy)
        y = to_matrix(y, self.policy)
        check_same_rows(x.shape, y.shape, "streaming CKA")
        dev = self.device if self.device is not None else x.device
        x, y = x.detach().to(dev, torch.float64), y.detach().to(dev, torch.float64)
        if not bool(torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise StitchkitError("a streaming CKA batch contains NaN or infinite values")
        m = x.shape[0]
        if m == 0:
            return
        if self.estimator == "minibatch_unbiased":
            if m < 4:
                raise StitchkitError(f"the minibatch unbiased CKA estimator needs batches of at least 4 rows, got {m}")
            px, py = self._debiased.prepare(x), self._debiased.prepare(y)
            scale = m * (m - 3)
            cross = float(self._debiased._cross(px, py))
            self._hsic += torch.tensor([cross, px.self_term, py.self_term], dtype=torch.float64) / scale
        else:
            self._update_moments(x, y)
        self.n += m
        self.n_batches += 1

    def _update_moments(self, x: Tensor, y: Tensor) -> None:
        m = x.shape[0]
        if self._cxx is None:
            p, q = x.shape[1], y.shape[1]
            f64 = dict(dtype=torch.float64, device=x.device)
            self._mean_x, self._mean_y = torch.zeros(p, **f64), torch.zeros(q, **f64)
            self._cxx, self._cyy, self._cxy = (
                torch.zeros(p, p, **f64),
                torch.zeros(q, q, **f64),
                torch.zeros(p, q, **f64),
            )
        elif x.shape[1] != self._cxx.shape[0] or y.shape[1] != self._cyy.shape[0]:
            raise StitchkitError(
                f"streaming CKA was started with ({self._cxx.shape[0]}, {self._cyy.shape[0]}) features, "
                f"got a batch with ({x.shape[1]}, {y.shape[1]})"
            )
        mx, my = x.mean(0), y.mean(0)
        xc, yc = x - mx, y - my
        # Chan et al.'s merge of centred co-moments: no cancellation when the activations have a large mean.
        w = self.n * m / (self.n + m)
        dx, dy = mx - self._mean_x, my - self._mean_y
        self._cxx += xc.T @ xc + w * torch.outer(dx, dx)
        self._cyy += yc.T @ yc + w * torch.outer(dy, dy)
        self._cxy += xc.T @ yc + w * torch.outer(dx, dy)
        self._mean_x += dx * (m / (self.n + m))
        self._mean_y += dy * (m / (self.n + m))

    def compute(self) -> float:
        if self.n_batches == 0:
            raise StitchkitError("streaming CKA has no batches yet")
        if self.estimator == "minibatch_unbiased":
            cross, sx, sy = (float(v) for v in self._hsic)
            lo, hi = DebiasedLinearCKA.info.range
        else:
            cross = float(torch.linalg.matrix_norm(self._cxy) ** 2)
            sx = float(torch.linalg.matrix_norm(self._cxx) ** 2)
            sy = float(torch.linalg.matrix_norm(self._cyy) ** 2)
            lo, hi = LinearCKA.info.range
        if not (sx > 0 and sy > 0):
            raise StitchkitError("streaming CKA is undefined because one side has no variance over the batches seen")
        return clamp(cross / math.sqrt(sx * sy), lo, hi)
