"""Direct matching: the least-squares affine map from source to target activations (spec 1.3.1).

Direct matching (Csiszárik et al. 2021; "pinv" in Balogh & Jelasity 2025) fits ``W, b`` minimising
``‖X Wᵀ + b − Y‖²_F`` where every data point is a row: conv activations ``(N, C, H, W)`` give ``N·H·W``
rows of ``C`` channels (so the map is a 1×1 conv), tokens ``(N, T, D)`` give ``N·T`` rows (CLS included),
vectors stay as they are (:func:`stitchkit.activations.to_rows`).

The original solved ``pinv([X, 1]) · Y`` on one batch of K images. Here the fit streams **sufficient
statistics** in float64 (:class:`LeastSquaresAccumulator`), so memory is O((p + q)·p) whatever the
number of rows, and many batches can be used. The statistics are the row count, the means, and the
*centred* co-moments ``Cxx = Σ(x−μx)(x−μx)ᵀ``, ``Cxy = Σ(x−μx)(y−μy)ᵀ`` and ``Σ‖y−μy‖²``, merged across
batches with Chan et al.'s pairwise update, which avoids the cancellation of ``XᵀX/n − μμᵀ`` when the
activations have a large mean (post-ReLU maps).

**Which solution when X is rank deficient.** ``pinv([X, 1])·Y`` is the minimum-norm least-squares
solution of the *augmented* system, i.e. it minimises ``‖W‖²_F + ‖b‖²`` among all least-squares
solutions; the bias is penalised too, so the plain centred solution ``W₀ = Cyx Cxx⁺, b₀ = μy − W₀μx`` is
not it. Every least-squares solution has ``b = μy − Wμx`` and rows ``w = w₀ + N z`` with N an orthonormal
basis of the null space of Cxx. Minimising ``‖w₀ + Nz‖² + (μy_j − μxᵀ(w₀ + Nz))²`` over z gives
``z = r_j Nᵀμx / (1 + ‖Nᵀμx‖²)`` with ``r_j = μy_j − w₀ᵀμx``, hence, with ``u = N Nᵀ μx``,

    W = W₀ + r uᵀ / (1 + ‖u‖²),   r = μy − W₀ μx,   b = μy − W μx,

which equals ``pinv([X, 1]) · Y`` exactly in exact arithmetic (tested against torch.linalg.pinv).

**Rank cutoff.** Cxx is eigendecomposed (``torch.linalg.eigh``); eigenvalues ``λ ≤ rcond · scale`` are
treated as zero, with ``scale = max(λ_max(Cxx), n · max_j μx_j²)`` (the second term stands in for the
mean's share of the augmented matrix's largest singular value, as in pinv, and keeps a constant column
at zero). The default ``rcond = eps64 · max(n, p + 1)`` mirrors torch.linalg.pinv's default
``rtol = eps · max(m, n)``, applied to eigenvalues of the Gram matrix, i.e. to *squared* singular
values: directions whose singular value is below about ``sqrt(rcond)`` of the largest are dropped, the
resolution limit of a Gram-matrix method in float64. It is not the original's float32 cutoff, which
:mod:`.original_solver` reproduces on request (``direct_match(..., solver="original")``,
``--dm-solver original``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..activations.low_rank import to_rows
from ..errors import StitchkitError, unknown_name
from ..stitch_methods import DEFAULT_DM_SOLVER, DM_SOLVERS

_EPS64 = torch.finfo(torch.float64).eps


def _fmt(shape) -> str:
    return str(tuple(int(s) for s in shape))


class LeastSquaresAccumulator:
    """Streamed affine least squares ``[X, 1]·Θ ≈ Y`` from batches of rows (float64 statistics).

    >>> acc = LeastSquaresAccumulator(p, q)
    >>> for x_rows, y_rows in batches: acc.update(x_rows, y_rows)
    >>> weight, bias = acc.solve()          # (q, p), (q,)
    >>> acc.residual(weight, bias)          # in-sample ‖XWᵀ + b − Y‖² / ‖Y‖²
    """

    def __init__(self, n_features_in: int, n_features_out: int, device=None):
        for name, v in (("n_features_in", n_features_in), ("n_features_out", n_features_out)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise StitchkitError(f"{name} must be a positive integer, got {v!r}")
        self.n_features_in = n_features_in
        self.n_features_out = n_features_out
        self.device = torch.device(device) if device is not None else None
        self.n = 0
        self._mean_x: Tensor | None = None
        self._mean_y: Tensor | None = None
        self._cxx: Tensor | None = None
        self._cxy: Tensor | None = None
        self._ssy = 0.0  # Σ‖y − μy‖² (as a float64 0-d tensor once updated)

    def _allocate(self, device: torch.device) -> None:
        p, q = self.n_features_in, self.n_features_out
        f64 = dict(dtype=torch.float64, device=device)
        self._mean_x = torch.zeros(p, **f64)
        self._mean_y = torch.zeros(q, **f64)
        self._cxx = torch.zeros(p, p, **f64)
        self._cxy = torch.zeros(p, q, **f64)
        self._ssy = torch.zeros((), **f64)

    @torch.no_grad()
    def update(self, x_rows: Tensor, y_rows: Tensor) -> None:
        """Add a batch of source rows ``(m, p)`` and the matching target rows ``(m, q)``."""
        x_rows, y_rows = torch.as_tensor(x_rows), torch.as_tensor(y_rows)
        p, q = self.n_features_in, self.n_features_out
        if x_rows.dim() != 2 or y_rows.dim() != 2 or x_rows.shape[1] != p or y_rows.shape[1] != q:
            raise StitchkitError(
                f"least squares expects source rows (m, {p}) and target rows (m, {q}), "
                f"got {_fmt(x_rows.shape)} and {_fmt(y_rows.shape)}"
            )
        if x_rows.shape[0] != y_rows.shape[0]:
            raise StitchkitError(
                f"source and target need the same number of rows, got {_fmt(x_rows.shape)} and {_fmt(y_rows.shape)}"
            )
        m = x_rows.shape[0]
        if m == 0:
            return
        if self._cxx is None:
            self._allocate(self.device if self.device is not None else x_rows.device)
        dev = self._cxx.device
        x = x_rows.detach().to(device=dev, dtype=torch.float64)
        y = y_rows.detach().to(device=dev, dtype=torch.float64)
        mx, my = x.mean(0), y.mean(0)
        xc, yc = x - mx, y - my
        # Chan et al.'s merge of two sets of centred statistics.
        n_old, n_new = self.n, self.n + m
        dx, dy = mx - self._mean_x, my - self._mean_y
        w = n_old * m / n_new
        self._cxx += xc.T @ xc + w * torch.outer(dx, dx)
        self._cxy += xc.T @ yc + w * torch.outer(dx, dy)
        self._ssy += (yc * yc).sum() + w * (dy * dy).sum()
        self._mean_x += dx * (m / n_new)
        self._mean_y += dy * (m / n_new)
        self.n = n_new

    def _need_data(self) -> None:
        if self.n == 0:
            raise StitchkitError("direct matching needs at least one row of activations; none were added")

    @property
    def mean_x(self) -> Tensor:
        self._need_data()
        return self._mean_x.clone()

    @property
    def mean_y(self) -> Tensor:
        self._need_data()
        return self._mean_y.clone()

    def _eigen(self, rcond: float | None) -> tuple[Tensor, Tensor, Tensor]:
        """Eigenpairs of Cxx split by the cutoff: (kept eigenvalues, kept vectors, null vectors)."""
        self._need_data()
        if rcond is None:
            rcond = _EPS64 * max(self.n, self.n_features_in + 1)
        if not (rcond >= 0):
            raise StitchkitError(f"rcond must be a non-negative number, got {rcond!r}")
        evals, evecs = torch.linalg.eigh(self._cxx)
        scale = max(float(evals[-1]), self.n * float((self._mean_x**2).max()))
        keep = evals > rcond * scale
        return evals[keep], evecs[:, keep], evecs[:, ~keep]

    def effective_rank(self, rcond: float | None = None) -> int:
        """Rank of the centred source after the cutoff (``rank([X, 1]) − 1``)."""
        return int(self._eigen(rcond)[0].numel())

    @torch.no_grad()
    def solve(self, rcond: float | None = None) -> tuple[Tensor, Tensor]:
        """The minimum-norm least-squares ``W`` ``(q, p)`` and ``b`` ``(q,)``, float64 on the statistics' device.

        Equal to ``pinv([X, 1]) · Y`` (split into weight and bias) in exact arithmetic; see the module
        docstring for the derivation and the meaning of ``rcond``.
        """
        lam, v_keep, v_null = self._eigen(rcond)
        mu_x, mu_y = self._mean_x, self._mean_y
        # W₀ᵀ = Cxx⁺ Cxy through the kept eigenpairs.
        w0 = ((v_keep / lam) @ (v_keep.T @ self._cxy)).T  # (q, p)
        u = v_null @ (v_null.T @ mu_x)  # projection of μx on the null space of Cxx
        r = mu_y - w0 @ mu_x
        weight = w0 + torch.outer(r, u) / (1.0 + u @ u)
        bias = mu_y - weight @ mu_x
        return weight, bias

    @torch.no_grad()
    def residual(self, weight: Tensor, bias: Tensor) -> float:
        """In-sample ``‖X Wᵀ + b − Y‖²_F / ‖Y‖²_F`` (uncentred target norm) from the statistics alone.

        With ``d = Wμx + b − μy``: ``Σ‖r‖² = tr(W Cxx Wᵀ) − 2 tr(W Cxy) + Σ‖y − μy‖² + n‖d‖²`` (exact).
        """
        self._need_data()
        dev = self._cxx.device
        weight = torch.as_tensor(weight).detach().to(device=dev, dtype=torch.float64)
        bias = torch.as_tensor(bias).detach().to(device=dev, dtype=torch.float64)
        q, p = self.n_features_out, self.n_features_in
        if tuple(weight.shape) != (q, p) or tuple(bias.shape) != (q,):
            raise StitchkitError(
                f"the residual needs a weight of shape ({q}, {p}) and a bias of shape ({q},), "
                f"got {_fmt(weight.shape)} and {_fmt(bias.shape)}"
            )
        d = weight @ self._mean_x + bias - self._mean_y
        err = ((weight @ self._cxx) * weight).sum() - 2.0 * (weight * self._cxy.T).sum() + self._ssy + self.n * (d @ d)
        total = self._ssy + self.n * (self._mean_y @ self._mean_y)
        if float(total) == 0.0:
            raise StitchkitError("the relative residual is undefined because every target value is zero")
        return max(float(err), 0.0) / float(total)


def paired_rows(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.dim() not in (2, 3, 4) or y.dim() not in (2, 3, 4):
        raise StitchkitError(
            f"direct matching needs (N, C, H, W), (N, T, D) or (N, D) activations, "
            f"got source {_fmt(x.shape)} and target {_fmt(y.shape)}"
        )
    x_rows, _ = to_rows(x)
    y_rows, _ = to_rows(y)
    if x_rows.shape[0] != y_rows.shape[0]:
        raise StitchkitError(
            f"source {_fmt(x.shape)} gives {x_rows.shape[0]} rows but target {_fmt(y.shape)} gives "
            f"{y_rows.shape[0]}; the spatial sizes or token counts must match after the stitching layer's resizing"
        )
    return x_rows, y_rows


def fit_affine(x: Tensor, y: Tensor, *, rcond: float | None = None) -> tuple[Tensor, Tensor]:
    """One-shot direct matching of two activations of any layout: ``(W (q, p), b (q,))`` in float64.

    Rows are data points (:func:`~stitchkit.activations.to_rows`); source and target must give the same
    number of rows.
    """
    x_rows, y_rows = paired_rows(x, y)
    acc = LeastSquaresAccumulator(x_rows.shape[1], y_rows.shape[1], device=x_rows.device)
    acc.update(x_rows, y_rows)
    return acc.solve(rcond)


def _ratio_tensors(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """``(‖pred − target‖², ‖target‖²)`` as float64 0-d tensors on the inputs' device (no host sync)."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise StitchkitError(
            f"prediction and target must have the same shape, got {_fmt(pred.shape)} and {_fmt(target.shape)}"
        )
    # Differences and squares in the inputs' precision (at least float32: one rounding each, relative
    # error ~1e-7), sums accumulated in float64; no float64 copies of the (large) activations.
    work = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    t = target.detach().to(work)
    d = pred.detach().to(work) - t
    return torch.sum(d * d, dtype=torch.float64), torch.sum(t * t, dtype=torch.float64)


def _per_sample_ratio_tensors(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Each sample's ``(‖pred − target‖², ‖target‖²)`` (dimension 0 is the batch) as float64 ``(b,)``
    tensors on the inputs' device, computed like :func:`_ratio_tensors`."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise StitchkitError(
            f"prediction and target must have the same shape, got {_fmt(pred.shape)} and {_fmt(target.shape)}"
        )
    if pred.dim() == 1:  # one value per sample
        pred, target = pred[:, None], target[:, None]
    work = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    t = target.detach().to(work)
    d = pred.detach().to(work) - t
    dims = list(range(1, d.dim()))
    return torch.sum(d * d, dim=dims, dtype=torch.float64), torch.sum(t * t, dim=dims, dtype=torch.float64)


def _ratio(pred: Tensor, target: Tensor) -> tuple[float, float]:
    err, total = _ratio_tensors(pred, target)
    return float(err), float(total)


def relative_residual(pred: Tensor, target: Tensor) -> float:
    """``‖pred − target‖²_F / ‖target‖²_F`` over the whole tensors (uncentred target norm, float64)."""
    err, total = _ratio(pred, target)
    if total == 0.0:
        raise StitchkitError("the relative residual is undefined because every target value is zero")
    return err / total


class ResidualMeter:
    """Streamed relative residual of stitched vs. real end activations ("DM structural error").

    ``pooled`` = Σ‖pred − target‖² / Σ‖target‖² over all batches (the sound default); ``batch_mean`` =
    the mean of the per-batch ratios, the original's value (spec 1.3, references.md section 3), which
    depends on the batch size. :meth:`record` keeps the sums on the inputs' device (no GPU→CPU sync per
    batch); :meth:`update` also returns the batch's ratio.

    The sums are kept per sample (:meth:`per_sample`: each image's ‖pred − target‖² and ‖target‖², for
    the bootstrap), and ``pooled`` is computed from them, so ``pooled == num.sum() / den.sum()`` exactly.
    """

    def __init__(self) -> None:
        self._errors: list[Tensor] = []
        self._totals: list[Tensor] = []

    @torch.no_grad()
    def record(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch without waiting for its value."""
        err, total = _per_sample_ratio_tensors(pred, target)
        self._errors.append(err)
        self._totals.append(total)

    def update(self, pred: Tensor, target: Tensor) -> float:
        """Add one batch; returns its ratio."""
        self.record(pred, target)
        err, total = float(self._errors[-1].sum()), float(self._totals[-1].sum())
        if total == 0.0:
            raise StitchkitError("the relative residual is undefined for a batch whose target values are all zero")
        return err / total

    def per_sample(self) -> tuple[np.ndarray, np.ndarray]:
        """``(num, den)``: each sample's ‖pred − target‖² and ‖target‖², float64 arrays in the recorded order."""
        if not self._errors:
            raise StitchkitError("the residual meter has no batches yet")
        return (torch.cat([e.cpu() for e in self._errors]).numpy(), torch.cat([t.cpu() for t in self._totals]).numpy())

    def _sums(self) -> tuple[Tensor, Tensor]:
        """Per-batch sums (for the batch mean)."""
        if not self._errors:
            raise StitchkitError("the residual meter has no batches yet")
        errors = torch.stack([e.cpu().sum() for e in self._errors])
        totals = torch.stack([t.cpu().sum() for t in self._totals])
        if bool((totals == 0).any()):
            raise StitchkitError("the relative residual is undefined for a batch whose target values are all zero")
        return errors, totals

    @property
    def sum_sq_error(self) -> float:
        return float(self.per_sample()[0].sum())

    @property
    def sum_sq_target(self) -> float:
        return float(self.per_sample()[1].sum())

    @property
    def pooled(self) -> float:
        self._sums()  # refuses a batch whose target is all zero
        num, den = self.per_sample()
        return float(num.sum() / den.sum())

    @property
    def batch_mean(self) -> float:
        errors, totals = self._sums()
        return float((errors / totals).mean())

    @property
    def n_batches(self) -> int:
        return len(self._errors)


@dataclass
class DirectMatchResult:
    """What :func:`direct_match` installed: the map, its in-sample residual (of the installed, layer-dtype
    weights), the number of rows it was fitted on and the effective rank of the centred source."""

    weight: Tensor
    bias: Tensor
    residual: float
    n_rows: int
    rank: int
    #: the streamed statistics of the fit, so that the in-sample residual of any later map (e.g. after
    #: task loss training) can be computed without another pass: ``stats.residual(*layer.affine())``
    stats: LeastSquaresAccumulator | None = field(default=None, repr=False)
    #: singular values of ``[X, 1]`` (``in_features + 1`` of them) that the solver's cutoff set to zero
    dropped: int | None = None
    #: the original's "Normalized PINV difference" (its second solve, no cutoff; ``solver="original"`` only)
    reported_residual: float | None = None


@torch.no_grad()
def accumulate_pairs(layer, batches: Iterable[tuple[Tensor, Tensor]]) -> LeastSquaresAccumulator:
    """Stream ``(front_activation, end_activation)`` batches into least-squares statistics for ``layer``.

    Source rows are ``layer.pre_transform(front)`` and target rows ``layer.transform_target(end)`` (see
    :func:`direct_match`). Memory does not grow with the number of batches.
    """
    acc = LeastSquaresAccumulator(layer.in_features, layer.out_features)
    for front, end in batches:
        x_rows, y_rows = paired_rows(layer.pre_transform(front), layer.transform_target(end))
        acc.update(x_rows, y_rows)
    return acc


@torch.no_grad()
def direct_match(
    layer, batches: Iterable[tuple[Tensor, Tensor]], *, rcond: float | None = None, solver: str = DEFAULT_DM_SOLVER
) -> DirectMatchResult:
    """Fit ``layer.transform`` by direct matching and install the map.

    ``batches`` yields ``(front_activation, end_activation)`` pairs with shapes ``(B, *layer.source_shape)``
    and ``(B, *layer.target_shape)``. The source rows are ``layer.pre_transform(front)`` (the transform
    input, e.g. the resized map for rc2c_pre, as in the original) and the target rows are
    ``layer.transform_target(end)``. Any low-rank truncation of the source is the caller's business
    (apply it to the front activation before passing it in). ``solver="original"`` solves the
    original's way instead (:func:`~.original_solver.original_direct_match`; ``rcond`` does not apply).
    """
    if solver not in DM_SOLVERS:
        raise unknown_name("direct-matching solver", solver, DM_SOLVERS)
    if solver == "original":
        from .original_solver import original_direct_match  # deferred: that module builds on this one

        return original_direct_match(layer, batches)
    acc = accumulate_pairs(layer, batches)
    weight, bias = acc.solve(rcond)
    layer.set_affine(weight, bias)
    installed_w, installed_b = layer.affine()
    rank = acc.effective_rank(rcond)
    return DirectMatchResult(
        weight=installed_w,
        bias=installed_b,
        residual=acc.residual(installed_w, installed_b),
        n_rows=acc.n,
        rank=rank,
        stats=acc,
        dropped=acc.n_features_in - rank,  # rank([X, 1]) = rank of the centred X + 1
    )
