"""The original's direct matching, on request (``--dm-solver original``; seed spec 1.3.1).

The original fitted the stitching layer from **one batch** of K images: every row (spatial position or
token) of the transform input ``X`` and the end layer's output ``Y``, in **float32** on the CPU, as

    A = torch.linalg.pinv([X, 1]) · Y,     W = Aᵀ[:, :p],  b = Aᵀ[:, p],

with torch's **default cutoff**: singular values of ``[X, 1]`` (m rows, p + 1 columns) at or below
``rtol · σ_max`` with ``rtol = eps32 · max(m, p + 1)`` count as zero. With m = K·H·W rows that cutoff is
large (eps32 ≈ 1.19e-7, so ``rtol ≈ 3e-3`` at K = 100 and 16 × 16 positions, ``≈ 1.2e-2`` at 32 × 32),
and it drops every direction of the source weaker than that share of its strongest one — many of a
post-ReLU map's (the issue measured 25 of 129 at layer2.0 and 483 of 513 for layer4.1 → layer1.0 of the
paper's ResNet-18s). stitchkit's default (:mod:`.direct_match`) solves the least-squares problem itself
(float64 statistics, minimum-norm solution), so its in-sample residual is the smallest any affine map
reaches, and the original's is at least as large.

The original then *reported* ("Normalized PINV difference") the in-sample residual of a second solve
with ``atol = rtol = 0``: every non-zero singular value kept, so not the map it installed. Both are
computed here: :class:`OriginalSolve` holds the installed map, how many singular values the cutoff
dropped, and that reported value.

The pseudo-inverse is formed from one thin SVD of ``[X, 1]`` with exactly torch.linalg.pinv's rule
(``σ > max(atol, rtol · σ_max)``), so the count of dropped values belongs to the same decomposition as
the solution; tests check it against ``torch.linalg.pinv`` and numpy's float32 ``pinv``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import StitchkitError
from .direct_match import DirectMatchResult, LeastSquaresAccumulator, paired_rows

EPS32 = torch.finfo(torch.float32).eps
#: the largest ``[X, 1]`` the one-batch float32 solve builds (its SVD needs about three times that)
MAX_ORIGINAL_BYTES = 2 * 2**30


def default_rtol(rows: int, columns: int) -> float:
    """torch.linalg.pinv's default relative cutoff for a float32 (rows × columns) matrix."""
    return EPS32 * max(rows, columns)


@dataclass
class OriginalSolve:
    """The original's fit of ``[X, 1]·A = Y``: the installed map (float32), the cutoff and what it dropped.

    ``columns`` = p + 1 (the ones column included); ``kept`` singular values lie above ``cutoff`` =
    ``rtol · sigma_max``; ``dropped = columns − kept`` (structural zeros of a matrix with fewer rows
    than columns included). ``reported_residual`` is the original's "Normalized PINV difference": the
    in-sample ``‖XW'ᵀ + b' − Y‖²_F / ‖Y‖²_F`` of the solve with no cutoff (atol = rtol = 0), in float32.
    """

    weight: Tensor
    bias: Tensor
    rows: int
    columns: int
    kept: int
    rtol: float
    sigma_max: float
    cutoff: float
    reported_residual: float

    @property
    def dropped(self) -> int:
        return self.columns - self.kept


def _solve(u: Tensor, s: Tensor, vh: Tensor, y: Tensor, threshold: float) -> tuple[Tensor, int]:
    keep = s > threshold
    a = vh[keep].T @ ((u[:, keep].T @ y) / s[keep, None])  # pinv([X, 1]) · Y without forming the pinv
    return a, int(keep.sum())


@torch.no_grad()
def solve_original(x_rows: Tensor, y_rows: Tensor) -> OriginalSolve:
    """The original's float32 ``pinv([X, 1]) · Y`` (default cutoff) of source rows ``(m, p)`` and target
    rows ``(m, q)``, on the CPU like the original; see the module docstring."""
    x = torch.as_tensor(x_rows).detach().to("cpu", torch.float32)
    y = torch.as_tensor(y_rows).detach().to("cpu", torch.float32)
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise StitchkitError(
            f"the original's direct matching needs source and target rows (m, p) and (m, q) with m ≥ 1, "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    m, p = x.shape
    x1 = torch.cat([x, torch.ones(m, 1)], dim=1)
    u, s, vh = torch.linalg.svd(x1, full_matrices=False)  # s descending
    rtol = default_rtol(m, p + 1)
    sigma_max = float(s[0])
    cutoff = rtol * sigma_max
    a, kept = _solve(u, s, vh, y, cutoff)
    exact, _ = _solve(u, s, vh, y, 0.0)  # the original's second, reported solve (atol = rtol = 0)
    target = torch.linalg.matrix_norm(y) ** 2
    if float(target) == 0.0:
        raise StitchkitError("the relative residual is undefined because every target value is zero")
    reported = float(torch.linalg.matrix_norm(x1 @ exact - y) ** 2 / target)
    return OriginalSolve(
        weight=a[:p].T.contiguous(),
        bias=a[p].contiguous(),
        rows=m,
        columns=p + 1,
        kept=min(kept, p + 1),
        rtol=rtol,
        sigma_max=sigma_max,
        cutoff=cutoff,
        reported_residual=reported,
    )


@torch.no_grad()
def original_direct_match(layer, batches: Iterable[tuple[Tensor, Tensor]]) -> DirectMatchResult:
    """:func:`~.direct_match.direct_match` the original's way: all fit rows in one float32 solve.

    The rows are the same as the default solver's (``layer.pre_transform(front)`` against
    ``layer.transform_target(end)``); they also feed the float64 statistics, so the result's
    ``residual`` (and any later in-sample residual) is computed exactly as for the default solver.
    """
    acc = LeastSquaresAccumulator(layer.in_features, layer.out_features)
    xs, ys, size = [], [], 0
    for front, end in batches:
        x_rows, y_rows = paired_rows(layer.pre_transform(front), layer.transform_target(end))
        acc.update(x_rows, y_rows)
        size += x_rows.shape[0] * (x_rows.shape[1] + 1) * 4
        if size > MAX_ORIGINAL_BYTES:
            raise StitchkitError(
                f"--dm-solver original solves all fit rows in one float32 matrix, and these are more than "
                f"{MAX_ORIGINAL_BYTES / 2**30:.0f} GiB; use fewer fit images (-pinv-samples) or the default solver"
            )
        xs.append(x_rows.detach().to("cpu", torch.float32))
        ys.append(y_rows.detach().to("cpu", torch.float32))
    if not xs:
        raise StitchkitError("direct matching needs at least one row of activations; none were added")
    solve = solve_original(torch.cat(xs), torch.cat(ys))
    layer.set_affine(solve.weight, solve.bias)
    installed_w, installed_b = layer.affine()
    return DirectMatchResult(
        weight=installed_w,
        bias=installed_b,
        residual=acc.residual(installed_w, installed_b),
        n_rows=acc.n,
        rank=solve.kept - 1,
        stats=acc,
        dropped=solve.dropped,
        reported_residual=solve.reported_residual,
    )


__all__ = ["EPS32", "OriginalSolve", "default_rtol", "original_direct_match", "solve_original"]
