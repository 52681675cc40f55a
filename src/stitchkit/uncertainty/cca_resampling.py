"""The CCA family's resampling (mean CCA, SVCCA, PWCCA) for :mod:`.similarity`: batched bases of the
resamples and the permuted pairings, and the covariance route that makes each side's resampled
whitenings once for every pair that shares it. Also the chunking every batched path uses."""

from __future__ import annotations

import torch
from torch import Tensor

from ..similarity.base import Measure
from ..similarity.cca import PWCCA, SVCCA, MeanCCA, n_canonical_pairs

#: elements (float64) one batched chunk may hold: 2**23 ≈ 64 MiB
CHUNK_ELEMENTS = 2**23
#: singular values below this fraction of the largest are dropped in the CCA family's resamples
#: (:class:`CovarianceSide`: an eigendecomposition of the covariance resolves no smaller ones)
_EIG_RCOND = 1e-6
#: the most one side of a pair may keep of its resamples' whitenings for the next pairs (else recomputed)
_SIDE_CACHE_BYTES = 2**28


def chunks(total: int, per_item: int):
    """Slices of ``total`` resamples, each holding at most :data:`CHUNK_ELEMENTS` elements of ``per_item`` each."""
    step = max(1, CHUNK_ELEMENTS // max(per_item, 1))
    for start in range(0, total, step):
        yield slice(start, min(start + step, total))


def by_covariance(measure: Measure) -> bool:
    """Whether the measure's bootstrap goes through :class:`CovarianceSide` (mean CCA and PWCCA)."""
    return isinstance(measure, MeanCCA | PWCCA) and not isinstance(measure, SVCCA)


def _cca_values(measure, ua: Tensor, ub: Tensor, va_s: Tensor | None, m) -> Tensor:
    """The CCA-family value of batched bases ``ua`` (B, n, ra), ``ub`` (B, n, rb); ``va_s`` (B, d, ra)
    is X's V·S (the projections of PWCCA's weights); ``m`` the number of canonical pairs (an int or,
    for SVCCA's resamples, one per resample)."""
    return _cca_from_product(measure, ua.transpose(1, 2) @ ub, va_s, m)


def _cca_from_product(measure, prod: Tensor, va_s: Tensor | None, m) -> Tensor:
    """The CCA-family value from the bases' inner products ``prod`` = U_XᵀU_Y (B, ra, rb) (see :func:`_cca_values`)."""
    if not isinstance(measure, PWCCA):
        return torch.linalg.svdvals(prod).clamp(0.0, 1.0).sum(1) / m
    p, rho, _ = torch.linalg.svd(prod, full_matrices=True)
    k = min(m, prod.shape[1])
    rho_full = torch.zeros(prod.shape[0], k, dtype=rho.dtype, device=rho.device)
    rho_full[:, : min(k, rho.shape[1])] = rho[:, :k].clamp(0.0, 1.0)
    weights = (va_s @ p[:, :, :k]).abs().sum(1)
    return 1.0 - (weights * rho_full).sum(1) / weights.sum(1)


def cca_null(measure, a, b, perms: Tensor) -> Tensor:
    m = n_canonical_pairs(a, b)
    out = []
    for part in chunks(perms.shape[0], a.u.shape[0] * b.u.shape[1]):
        ub = b.u[perms[part]]
        ua = a.u.expand(ub.shape[0], *a.u.shape)
        va_s = (a.v * a.s).expand(ub.shape[0], *a.v.shape) if isinstance(measure, PWCCA) else None
        out.append(_cca_values(measure, ua, ub, va_s, m))
    return torch.cat(out)


def _weighted_bases(measure, x: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Batched bases of the resamples' centred column spaces, directions below the rank tolerance (and,
    for SVCCA, beyond the kept ones) masked; X's V·S; the number of directions kept per resample."""
    n, d = x.shape
    mean = w @ x / n
    xw = w.sqrt()[:, :, None] * (x[None] - mean[:, None, :])
    u, s, vh = torch.linalg.svd(xw, full_matrices=False)
    rcond = measure.rcond if measure.rcond is not None else max(n, d) * torch.finfo(s.dtype).eps
    keep = s > s[:, :1] * rcond  # subspace()'s numerical rank, per resample
    if isinstance(measure, SVCCA):  # SVCCA.kept_directions, per resample
        rank = keep.sum(1)
        if measure.n_components is not None:
            kept = rank.clamp(max=measure.n_components)
        else:
            energy = torch.cumsum(s * s * keep, 1)
            target = measure.variance * energy[:, -1:] * (1 - 1e-12)
            kept = torch.minimum((energy < target).sum(1) + 1, rank)
        keep = keep & (torch.arange(s.shape[1], device=s.device)[None, :] < kept[:, None])
    s = s * keep
    return u * keep[:, None, :], vh.transpose(1, 2) * s[:, None, :], keep.sum(1)


class CovarianceSide:
    """One side of the CCA family's bootstrap through covariances (mean CCA, PWCCA): for each resample,
    the eigendecomposition of its weighted centred covariance ``C = Xᵀdiag(w)X − n·m mᵀ = V S² Vᵀ`` gives
    the whitening ``V S⁻¹`` (so that U = diag(√w)(X − 1mᵀ) V S⁻¹ without forming U) and PWCCA's ``V S``.
    Every pair that shares the side (the same layer, the same resampled images) reuses them: the
    d × d eigendecompositions are made once per side instead of an n × d SVD per pair and side.

    The eigendecomposition resolves singular values only down to ~1e-6 of the largest (its error is
    ``eps·s_max²`` in ``s²``), so directions below :data:`_EIG_RCOND` of the largest are dropped in the
    resamples (the SVD of the point estimate keeps down to ``max(n, d)·eps``); only nearly collinear
    features are affected."""

    def __init__(self, measure, x: Tensor):
        self.measure, self.x = measure, x
        self._weights: Tensor | None = None
        self._all: tuple[Tensor, Tensor] | None = None

    def part(self, w: Tensor, part: slice) -> tuple[Tensor, Tensor, Tensor]:
        """The resamples ``w[part]``'s means (b, d), whitenings (b, d, d) and PWCCA's V·S (b, d, d)."""
        n, d = self.x.shape
        mean = w[part] @ self.x / n
        if self._weights is not w:  # another set of resamples: start over
            self._weights, self._all = w, None
            if w.shape[0] * d * d * 2 * 8 <= _SIDE_CACHE_BYTES:  # small enough to keep for every pair of this side
                pieces = [
                    _covariance_bases(self.measure, self.x, w[p], w[p] @ self.x / n)
                    for p in chunks(w.shape[0], d * (n + 3 * d))
                ]
                self._all = (torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces]))
        if self._all is not None:
            return mean, self._all[0][part], self._all[1][part]
        return (mean, *_covariance_bases(self.measure, self.x, w[part], mean))


def _covariance_bases(measure, x: Tensor, w: Tensor, mean: Tensor) -> tuple[Tensor, Tensor]:
    n, d = x.shape
    cov = (x.T[None] * w[:, None, :]) @ x - n * mean[:, :, None] * mean[:, None, :]
    evals, vecs = torch.linalg.eigh(cov)
    s = evals.flip(-1).clamp(min=0).sqrt()
    vecs = vecs.flip(-1)
    rcond = measure.rcond if measure.rcond is not None else max(n, d) * torch.finfo(s.dtype).eps
    keep = s > s[:, :1] * max(rcond, _EIG_RCOND)
    inverse = torch.where(keep, 1.0 / torch.where(keep, s, 1.0), 0.0)
    return vecs * inverse[:, None, :], vecs * (s * keep)[:, None, :]


def cca_boot_covariance(measure, a, b, w: Tensor, sa: CovarianceSide, sb: CovarianceSide) -> Tensor:
    """Mean CCA and PWCCA on every resample from the two sides' cached whitenings: per pair only the
    resamples' cross-covariances ``Xᵀdiag(w)Y − n·m_X m_Yᵀ`` and a small SVD."""
    n, da, db = sa.x.shape[0], sa.x.shape[1], sb.x.shape[1]
    m = n_canonical_pairs(a, b)
    out = []
    for part in chunks(w.shape[0], 2 * (da * da + db * db) + n * (da + db) + da * db):
        mean_a, whiten_a, va_s = sa.part(w, part)
        mean_b, whiten_b, _ = sb.part(w, part)
        cross = (sa.x.T[None] * w[part][:, None, :]) @ sb.x - n * mean_a[:, :, None] * mean_b[:, None, :]
        out.append(_cca_from_product(measure, whiten_a.transpose(1, 2) @ cross @ whiten_b, va_s, m))
    return torch.cat(out)


def cca_boot(measure, a, b, w: Tensor, xa: Tensor, xb: Tensor) -> Tensor:
    n = xa.shape[0]
    out = []
    for part in chunks(w.shape[0], n * (xa.shape[1] + xb.shape[1])):
        ua, va_s, ka = _weighted_bases(measure, xa, w[part])
        ub, _, kb = _weighted_bases(measure, xb, w[part])
        # SVCCA's canonical pairs follow the directions kept in each resample; the others' are fixed
        m = (
            torch.clamp(torch.minimum(ka, kb), max=n - 1).to(ua.dtype)
            if isinstance(measure, SVCCA)
            else n_canonical_pairs(a, b)
        )
        out.append(_cca_values(measure, ua, ub, va_s, m))
    return torch.cat(out)
