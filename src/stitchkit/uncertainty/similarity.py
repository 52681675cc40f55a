"""How sure a similarity index is: bootstrap intervals over the samples, and a permutation null.

Both are computed from the data matrices a measure compares (``X`` n × p, ``Y`` n × q, row i of both
from the same input) and, where one exists, from the measure's prepared form, batched over resamples
(no Python loop over resamples; chunks bound the memory).

**The sampling unit is the image.** Under the ``positions`` policy an image gives ``g`` rows (its
spatial positions, image-major, :func:`~stitchkit.similarity.to_matrix`); resamples and permutations
draw whole images, so a row's weight is its image's count and a permutation moves an image's rows
together.

**Bootstrap** (:func:`~.bootstrap.resample_counts`: the same counts for the same number of images and
seed, so every cell of a grid is resampled with the same images). A resample is the data with image i
repeated ``counts[b, i]`` times; every index is recomputed on it, centring included:

* CKA (``cka``, ``rbf_cka``): the rows and columns of the prepared n × n Gram matrix are resampled; with
  counts w, the centred HSIC of the resample is ``wᵀ(K∘L)w − 2/n Σᵢ wᵢ(Kw)ᵢ(Lw)ᵢ + (wᵀKw)(wᵀLw)/n²``
  (tr(HK_bHL_b) expanded), one matrix product per pair for all resamples. RBF CKA keeps the bandwidth
  of the whole sample (the resampled kernel is the whole sample's kernel restricted to the resample).
* ``cka_debiased``: duplicated samples would put ‖xᵢ‖² (a diagonal term, the very bias the unbiased
  HSIC removes) off the diagonal. **Choice: copies of one sample count as the diagonal.** The zero-
  diagonal Gram matrix K̃ of the whole sample's centred data is resampled, so the entries between two
  copies of a sample are 0, like the diagonal, and Song et al.'s estimator is applied to the resampled
  K̃ as it is (n positions). (The zeroed copies make the value depend slightly on the centring, which
  is therefore the whole sample's, not the resample's.) Every
  pair of distinct samples keeps its weight wᵢwⱼ; the only change is that the ~n pairs of copies (a
  fraction ≈ 1/n of all pairs) contribute nothing, so the resamples stay centred on the debiased value
  (recomputing on explicitly duplicated features instead would bias them upwards for wide layers).
* ``procrustes``, the CCA family: weighted moments. A resample's centred cross products are
  ``Xᵀdiag(w)Y − n·m_X m_Yᵀ`` (m the resample's means), so Procrustes uses the prepared factor
  F (n × r, r ≤ min(n, p)) and the CCA family a batched SVD of ``diag(√w)(X − 1m_Xᵀ)`` (the same column
  inner products as the resample). For a rank-deficient resample (features ≥ distinct samples),
  directions below the rank tolerance are masked instead of dropped; PWCCA's weights over ρ = 0
  variates then depend on the SVD's basis, as PWCCA's already do.
* anything else (``dm_residual``): the measure on the explicitly resampled rows (a loop; it fits a
  least-squares map per resample).

Intervals are percentile intervals (:func:`~.bootstrap.percentile_interval`), clipped to the range.

**Permutation null.** The correspondence between the two sides is shuffled: Y's images are permuted
(P permutations, seeded), which keeps each side's own structure (its Gram matrix, its spectrum) and
destroys the pairing. A permutation changes no mean or norm, so the prepared forms are reused as they
are: CKA contracts the centred (or U-centred) Gram K̄ with the permuted L̄[π][:, π]; Procrustes and the
CCA family multiply the prepared factor / basis of X with the permuted rows of Y's. The p-value is
``(1 + #{null ≥ observed}) / (1 + P)`` for a similarity (``≤`` for a distance), so the smallest
possible is 1/(P + 1). The **null-calibrated score** is ``1 − d(observed) / mean(d(null))`` with
``d`` the measure's dissimilarity (:meth:`MeasureInfo.dissimilarity`: ``1 − v`` for a similarity
bounded by 1, ``v`` for a distance from 0): 1 for identical representations, 0 at the level of
unrelated representations of the same shapes, negative below it. For a similarity bounded by 1 it is
``(v − mean_null) / (1 − mean_null)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import StitchkitError
from ..similarity.base import Measure, centre
from ..similarity.cca import PWCCA, MeanCCA
from ..similarity.cka import RBFCKA, DebiasedLinearCKA, LinearCKA, u_centre
from ..similarity.direct import DMResidual
from ..similarity.procrustes import Procrustes
from .bootstrap import DEFAULT_LEVEL, percentile_interval, resample_counts
from .cca_resampling import CovarianceSide, by_covariance, cca_boot, cca_boot_covariance, cca_null, chunks

#: the numbers a similarity record's ``uncertainty`` holds (and the CSV's extra columns)
UNCERTAINTY_FIELDS = ("lower", "upper", "p_value", "null_mean", "calibrated")
#: a null value this close to the observed one counts as reaching it (ties are not evidence)
_TIE = 1e-12


def _check_count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise StitchkitError(f"{what} must be a non-negative integer (0 = off), got {value!r}")
    return int(value)


@dataclass
class UncertaintyPlan:
    """What to compute: ``bootstrap`` resamples and ``permutations`` (0 = off), the interval's
    ``level`` and the ``seed`` of both. :meth:`record` is what a result records."""

    bootstrap: int = 0
    permutations: int = 0
    level: float = DEFAULT_LEVEL
    seed: int = 0
    _draws: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.bootstrap = _check_count(self.bootstrap, "the number of bootstrap resamples")
        self.permutations = _check_count(self.permutations, "the number of permutations")
        if not (isinstance(self.level, (int, float)) and 0 < self.level < 1):
            raise StitchkitError(f"the confidence level must be a number between 0 and 1, got {self.level!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise StitchkitError(f"the uncertainty seed must be an integer, got {self.seed!r}")

    @property
    def enabled(self) -> bool:
        return self.bootstrap > 0 or self.permutations > 0

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.bootstrap:
            out.update(
                method="percentile bootstrap over images", resamples=self.bootstrap, level=self.level, seed=self.seed
            )
        if self.permutations:
            out.update(
                permutations=self.permutations,
                seed=self.seed,
                null="Y's images permuted against X's",
                calibrated="1 - dissimilarity / mean null dissimilarity",
            )
        return out

    def counts(self, images: int) -> np.ndarray:
        """(bootstrap, images) counts, the same for the same images and seed."""
        return resample_counts(images, self.bootstrap, self.seed)

    def weights(self, images: int, rows: int, dtype: torch.dtype, device) -> Tensor:
        """The row weights (bootstrap, rows) as one tensor per (images, rows), shared by every pair."""
        key = ("weights", images, rows, dtype, str(device))
        if key not in self._draws:
            self._draws[key] = torch.as_tensor(row_weights(self.counts(images), rows), dtype=dtype, device=device)
        return self._draws[key]

    def permutations_of(self, images: int) -> np.ndarray:
        """(permutations, images) permutations of the images, seeded (cached)."""
        key = ("perms", images)
        if key not in self._draws:
            rng = np.random.default_rng([int(self.seed), int(images), 0x9E57])
            self._draws[key] = rng.permuted(np.tile(np.arange(images), (self.permutations, 1)), axis=1)
        return self._draws[key]


def row_weights(counts: np.ndarray, rows: int) -> np.ndarray:
    """Image counts (B, N) as row weights (B, rows), each image's ``rows // N`` rows weighted alike."""
    images = counts.shape[1]
    if rows % images:
        raise StitchkitError(f"a data matrix of {rows} rows does not split into {images} images")
    return np.repeat(counts, rows // images, axis=1)


def row_permutations(perms: np.ndarray, rows: int) -> np.ndarray:
    """Image permutations (P, N) as row permutations (P, rows) that move each image's rows together."""
    images = perms.shape[1]
    if rows % images:
        raise StitchkitError(f"a data matrix of {rows} rows does not split into {images} images")
    g = rows // images
    return (perms[:, :, None] * g + np.arange(g)[None, None, :]).reshape(perms.shape[0], rows)


# -- CKA: Gram matrices ---------------------------------------------------------------------------
def _kernel_state(measure: Measure, prep, x: Tensor) -> dict:
    """The Gram matrix the bootstrap resamples (``boot``) and the centred one the permutations
    contract (``null``), with the prepared self term."""
    if isinstance(measure, DebiasedLinearCKA):
        xc = prep.x if prep.x is not None else centre(x.to(measure.dtype))
        k = xc @ xc.T
        k.fill_diagonal_(0)
        return {"boot": k, "null": prep.gram if prep.gram is not None else u_centre(k), "self": prep.self_term}
    # the Gram of centred data (linear CKA, either form) and RBF CKA's HKH are centred already
    k = prep.gram if prep.gram is not None else prep.x @ prep.x.T
    return {"boot": k, "null": k, "self": prep.self_term}


def _hsic_boot(measure: Measure, k: Tensor, l: Tensor, w: Tensor) -> Tensor:
    """The (debiased or biased) HSIC numerator of every resample with row weights ``w`` (B, n)."""
    n = k.shape[0]
    kw, lw = w @ k, w @ l
    t1 = ((w @ (k * l)) * w).sum(1)
    t2 = (kw * w * lw).sum(1)
    t3 = (kw * w).sum(1) * (lw * w).sum(1)
    if isinstance(measure, DebiasedLinearCKA):
        return t1 + t3 / ((n - 1) * (n - 2)) - 2.0 * t2 / (n - 2)
    return t1 - 2.0 * t2 / n + t3 / n**2


def _cka_boot(measure, a: dict, b: dict, w: Tensor) -> Tensor:
    for side in (a, b):
        if side.get("_w") is not w:  # the self terms, once per side and set of resamples
            side["_w"], side["_self_boot"] = w, _hsic_boot(measure, side["boot"], side["boot"], w)
    den = (a["_self_boot"] * b["_self_boot"]).sqrt()
    return _hsic_boot(measure, a["boot"], b["boot"], w) / den


def _cka_null_features(measure, pa, pb, perms: Tensor) -> Tensor:
    """The null from the feature form: ‖XᵀY_π‖² (and the debiased terms), for narrow layers."""
    x, y, n = pa.x, pb.x, pa.n
    out = []
    for part in chunks(perms.shape[0], n * (y.shape[1] + x.shape[1]) + x.shape[1] * y.shape[1]):
        cross = torch.einsum("ni,bnj->bij", x, y[perms[part]]).square().sum((1, 2))
        if isinstance(measure, DebiasedLinearCKA):
            kl = pb.sq_norms[perms[part]] @ pa.sq_norms
            cross = cross - kl + pa.sq_norms.sum() * pb.sq_norms.sum() / ((n - 1) * (n - 2)) - 2.0 * kl / (n - 2)
        out.append(cross)
    return torch.cat(out) / math.sqrt(pa.self_term * pb.self_term)


def _cka_null(measure, a: dict, b: dict, perms: Tensor) -> Tensor:
    n = a["null"].shape[0]
    out = []
    inverse = torch.argsort(perms, dim=1)
    for part in chunks(perms.shape[0], 2 * n * n):
        # Σᵢⱼ Kᵢⱼ L_π(i)π(j) = Σᵢₖ K_π⁻¹(k)ᵢ L_π(i)k (K symmetric): two row gathers, no scattered 2-D gather
        out.append(torch.einsum("bki,bik->b", a["null"][inverse[part]], b["null"][perms[part]]))
    return torch.cat(out) / math.sqrt(a["self"] * b["self"])


# -- Procrustes: the prepared factor --------------------------------------------------------------
def _nuclear(m: Tensor) -> Tensor:
    return torch.linalg.svdvals(m).sum(-1)


def _procrustes_boot(measure, a, b, w: Tensor) -> Tensor:
    f, g = a.factor, b.factor
    n = f.shape[0]
    out = []
    for part in chunks(w.shape[0], f.shape[1] * g.shape[1] + n * f.shape[1]):
        wb = w[part]
        mf, mg = wb @ f / n, wb @ g / n
        cross = torch.einsum("bn,ni,nj->bij", wb, f, g) - n * mf[:, :, None] * mg[:, None, :]
        nf = (wb @ (f * f).sum(1)) - n * (mf * mf).sum(1)
        ng = (wb @ (g * g).sum(1)) - n * (mg * mg).sum(1)
        out.append(2.0 - 2.0 * _nuclear(cross) / (nf * ng).sqrt())
    return torch.cat(out)


def _procrustes_null(measure, a, b, perms: Tensor) -> Tensor:
    f, g = a.factor, b.factor
    out = []
    for part in chunks(perms.shape[0], f.shape[0] * g.shape[1] + f.shape[1] * g.shape[1]):
        out.append(2.0 - 2.0 * _nuclear(torch.einsum("ni,bnj->bij", f, g[perms[part]])))
    return torch.cat(out)


# -- the fallback: the measure on explicitly resampled rows ---------------------------------------
def _explicit_boot(measure, xa: Tensor, xb: Tensor, w: Tensor) -> Tensor:
    rows = torch.arange(xa.shape[0], device=xa.device)
    values = []
    for wb in w.to(torch.long):  # one least-squares fit per resample: no shared factorisation exists
        idx = torch.repeat_interleave(rows, wb)
        values.append(measure.compare(measure.prepare(xa[idx]), measure.prepare(xb[idx])))
    return torch.tensor(values, dtype=torch.float64)


def _explicit_null(measure, a, xb: Tensor, perms: Tensor) -> Tensor:
    return torch.tensor([measure.compare(a, measure.prepare(xb[p])) for p in perms], dtype=torch.float64)


# -- one pair --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexUncertainty:
    """How sure one index value is: its interval (``lower``, ``upper``; NaN without a bootstrap), its
    permutation ``p_value``, the null's mean and the null-calibrated score (NaN without permutations)."""

    lower: float = math.nan
    upper: float = math.nan
    p_value: float = math.nan
    null_mean: float = math.nan
    calibrated: float = math.nan

    def to_dict(self) -> dict[str, float]:
        return {
            "lower": self.lower,
            "upper": self.upper,
            "p_value": self.p_value,
            "null_mean": self.null_mean,
            "calibrated": self.calibrated,
        }


def resampling_state(measure: Measure, prep, x: Tensor) -> Any:
    """What the resampling of one side needs beyond ``prep``, once per side: the Gram matrices of CKA,
    the resamples' whitenings of mean CCA and PWCCA (:class:`~.cca_resampling.CovarianceSide`)."""
    if isinstance(measure, (LinearCKA, RBFCKA)):
        return _kernel_state(measure, prep, x)
    if by_covariance(measure):
        return CovarianceSide(measure, x.to(measure.dtype))
    return None


def bootstrap_values(measure: Measure, pa, pb, xa: Tensor, xb: Tensor, w: Tensor, sa=None, sb=None) -> Tensor:
    """The measure on every resample (row weights ``w`` (B, n)) of the prepared pair (``pa``, ``pb``)
    of the data matrices (``xa``, ``xb``); ``sa``, ``sb`` from :func:`resampling_state`."""
    if isinstance(measure, (LinearCKA, RBFCKA)):
        sa = sa if sa is not None else resampling_state(measure, pa, xa)
        sb = sb if sb is not None else resampling_state(measure, pb, xb)
        return _cka_boot(measure, sa, sb, w)
    if isinstance(measure, Procrustes):
        return _procrustes_boot(measure, pa, pb, w)
    if by_covariance(measure):
        sa = sa if sa is not None else resampling_state(measure, pa, xa)
        sb = sb if sb is not None else resampling_state(measure, pb, xb)
        return cca_boot_covariance(measure, pa, pb, w, sa, sb)
    if isinstance(measure, MeanCCA | PWCCA):
        return cca_boot(measure, pa, pb, w, xa.to(measure.dtype), xb.to(measure.dtype))
    return _explicit_boot(measure, xa, xb, w)


def fixed_fit_values(measure: DMResidual, pa, pb, w: Tensor) -> Tensor:
    """``dm_residual`` on every resample (row weights ``w`` (B, n)) with the whole sample's least-squares
    map held fixed: ``Σ wᵢ‖xᵢWᵀ + b − yᵢ‖² / Σ wᵢ‖yᵢ‖²``, one matrix product (no refit; the interval then
    covers the evaluation images, not the fit's own variation)."""
    err, total = measure.row_terms(pa, pb)
    w = w.to(device=err.device, dtype=torch.float64)
    return ((w @ err) / (w @ total)).clamp(0.0, 1.0)


def null_values(measure: Measure, pa, pb, xa: Tensor, xb: Tensor, perms: Tensor, sa=None, sb=None) -> Tensor:
    """The measure with Y's rows permuted by each row of ``perms`` (P, n)."""
    if isinstance(measure, (LinearCKA, RBFCKA)):
        sa = sa if sa is not None else resampling_state(measure, pa, xa)
        if getattr(pa, "x", None) is not None and getattr(pb, "x", None) is not None and pa.d * pb.d * 8 < pa.n * pa.n:
            return _cka_null_features(measure, pa, pb, perms)  # narrow layers: cheaper than permuting n × n Grams
        sb = sb if sb is not None else resampling_state(measure, pb, xb)
        return _cka_null(measure, sa, sb, perms)
    if isinstance(measure, Procrustes):
        return _procrustes_null(measure, pa, pb, perms)
    if isinstance(measure, MeanCCA | PWCCA):
        return cca_null(measure, pa, pb, perms)
    return _explicit_null(measure, pa, xb, perms)


def summarise(
    measure: Measure, value: float, boot: np.ndarray | None, null: np.ndarray | None, level: float
) -> IndexUncertainty:
    """Interval, p-value, null mean and calibrated score from the resampled and the null values."""
    info = measure.info
    lo, hi = info.range
    out: dict[str, float] = {}
    if boot is not None:
        lower, upper = percentile_interval(np.clip(boot, lo, hi), level)
        out.update(lower=float(lower), upper=float(upper))
    if null is not None:
        null = np.clip(null, lo, hi)
        tie = _TIE * max(1.0, abs(value))
        beats = null >= value - tie if info.kind == "similarity" else null <= value + tie
        out["p_value"] = float((1 + int(beats.sum())) / (1 + null.size))
        out["null_mean"] = float(null.mean())
        d_null = float(hi - null.mean()) if info.kind == "similarity" else float(null.mean() - lo)
        out["calibrated"] = 1.0 - info.dissimilarity(value) / d_null if d_null > 0 else math.nan
    return IndexUncertainty(**out)


@dataclass(frozen=True)
class PreparedSide:
    """One side of a compared pair as the resampling reads it: the measure's prepared form ``prep``, the
    data matrix ``x`` it was prepared from, and (optional) its :func:`resampling_state`."""

    prep: Any
    x: Tensor
    state: Any = None


def index_uncertainty(
    measure: Measure, x, y, plan: UncertaintyPlan, *, images: int | None = None
) -> tuple[float, IndexUncertainty]:
    """``measure(X, Y)`` and how sure it is, for data matrices ``x``, ``y`` whose rows are ``images``
    images (default: one row each) — the library entry point on arrays."""
    xa = measure._matrix(x, "X")
    xb = measure._matrix(y, "Y").to(xa.device)
    pa, pb = measure.prepare(xa), measure.prepare(xb)
    value = measure.compare(pa, pb)
    sides = PreparedSide(prep=pa, x=xa), PreparedSide(prep=pb, x=xb)
    return value, pair_uncertainty(measure, *sides, plan, images=images or xa.shape[0])


def pair_uncertainty(
    measure: Measure,
    a: PreparedSide,
    b: PreparedSide,
    plan: UncertaintyPlan,
    *,
    images: int,
    value: float | None = None,
) -> IndexUncertainty:
    """The :class:`IndexUncertainty` of one prepared pair (see :func:`index_uncertainty`); ``value``: the
    measure on it, when already computed."""
    pa, pb, xa, xb, states = a.prep, b.prep, a.x, b.x, (a.state, b.state)
    value = measure.compare(pa, pb) if value is None else value
    rows = xa.shape[0]
    boot = null = None
    with torch.no_grad():
        if plan.bootstrap:
            w = plan.weights(images, rows, measure.dtype, xa.device)
            boot = bootstrap_values(measure, pa, pb, xa, xb, w, *states).cpu().numpy()
        if plan.permutations:
            perms = torch.as_tensor(row_permutations(plan.permutations_of(images), rows), device=xa.device)
            null = null_values(measure, pa, pb, xa, xb, perms, *states).cpu().numpy()
    return summarise(measure, value, boot, null, plan.level)
