"""Low-rank approximations of layer activations (spec 1.9; references.md sections 2 and 3).

A representation is viewed as a matrix with one row per *data point* and one column per feature:
conv activations ``(N, C, H, W)`` give ``N·H·W`` rows of ``C`` channels, token sequences ``(N, T, D)``
give ``N·T`` rows of ``D`` features, vectors ``(N, D)`` stay as they are. The rank-r approximation keeps
the top r singular directions of the *centred* rows and adds the mean back.

Two modes:

* :func:`low_rank` — the original's behaviour: the SVD is recomputed on whatever tensor is passed in
  (a mini-batch during stitching and probing), so the kept subspace depends on the batch. Parity only.
* :class:`LowRankBasis` — the sound default for experiments: the mean and the top-r basis are estimated
  once on a reference set and applied identically to every batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import StitchkitError
from ..ranks import check_rank


def to_rows(x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Unfold an activation into data-point rows; also return the inverse for tensors of that layout.

    ``(N, C, H, W) -> (N·H·W, C)``, ``(N, T, D) -> (N·T, D)``, ``(N, D) -> (N, D)``.
    """
    if x.dim() == 4:
        n, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)

        def restore(r: Tensor) -> Tensor:
            return r.reshape(n, h, w, r.shape[-1]).permute(0, 3, 1, 2)

        return rows, restore
    if x.dim() == 3:
        n, t, d = x.shape
        return x.reshape(n * t, d), lambda r: r.reshape(n, t, r.shape[-1])
    if x.dim() == 2:
        return x, lambda r: r
    raise StitchkitError(
        f"cannot turn an activation of shape {tuple(x.shape)} into data points; expected (N, C, H, W), (N, T, D) or "
        f"(N, D)"
    )


@torch.no_grad()
def principal_directions(x: Tensor, chunk: int = 1 << 16) -> tuple[Tensor, Tensor]:
    """The mean of ``x``'s data-point rows and its principal directions, the columns of an orthonormal
    ``(F, F)`` matrix by decreasing variance: the right singular vectors of the centred rows, from the
    eigendecomposition of their ``F × F`` scatter matrix accumulated in float64 (chunked, so no float64
    copy of the rows is made). One decomposition serves every rank (:func:`truncate`)."""
    rows, _ = to_rows(x)
    mean = rows.double().mean(dim=0)
    scatter = torch.zeros(rows.shape[1], rows.shape[1], dtype=torch.float64, device=rows.device)
    for part in rows.split(chunk):
        centred = part.double() - mean
        scatter += centred.T @ centred
    _, vectors = torch.linalg.eigh(scatter)  # ascending
    return mean, vectors.flip(-1)


def truncate(x: Tensor, mean: Tensor, directions: Tensor, rank: int) -> Tensor:
    """``x`` with its rows projected on the first ``rank`` ``directions`` around ``mean`` (from
    :func:`principal_directions`), in ``x``'s layout and dtype (computed in float32 at least)."""
    rows, restore = to_rows(x)
    work = torch.float32 if rows.dtype in (torch.float16, torch.bfloat16) else rows.dtype
    v = directions[:, :rank].to(work)
    m = mean.to(work)
    approx = ((rows.to(work) - m) @ v) @ v.T + m
    return restore(approx.to(rows.dtype)).contiguous()


def low_rank(x: Tensor, rank: int | None) -> Tensor:
    """Per-tensor centred truncated SVD (the original's ``low_rank_approx``): the top ``rank`` singular
    directions of the centred rows of this tensor, the mean added back. ``rank=None`` or a rank at least
    the feature count returns ``x`` unchanged."""
    if rank is None:
        return x
    rank = check_rank(rank)
    rows, _ = to_rows(x)
    if rank >= rows.shape[1]:
        return x
    return truncate(x, *principal_directions(x), rank)


class LowRankBasis(torch.nn.Module):
    """A fixed rank-r projection estimated once: ``x -> mean + (x - mean) V Vᵀ`` with V the top-r right
    singular vectors of the reference rows.

    Statistics are streamed (``update`` per batch, then ``finalize``) through the feature covariance,
    so the reference set can be larger than memory: an F×F eigendecomposition instead of an SVD of
    the (rows × F) matrix.
    """

    def __init__(self, rank: int):
        super().__init__()
        self.rank = check_rank(rank)
        self.register_buffer("mean", torch.empty(0))
        self.register_buffer("basis", torch.empty(0))
        self._n = 0
        self._sum: Tensor | None = None
        self._outer: Tensor | None = None

    @torch.no_grad()
    def update(self, x: Tensor) -> LowRankBasis:
        rows, _ = to_rows(x)
        rows = rows.double()
        if self._sum is None:
            self._sum = torch.zeros(rows.shape[1], dtype=torch.float64, device=rows.device)
            self._outer = torch.zeros(rows.shape[1], rows.shape[1], dtype=torch.float64, device=rows.device)
        elif rows.shape[1] != self._sum.shape[0]:
            raise StitchkitError(f"low-rank basis was started with {self._sum.shape[0]} features, got {rows.shape[1]}")
        self._n += rows.shape[0]
        self._sum += rows.sum(0)
        self._outer += rows.T @ rows
        return self

    @torch.no_grad()
    def finalize(self) -> LowRankBasis:
        if self._sum is None or self._n == 0:
            raise StitchkitError("low-rank basis needs at least one batch of reference activations")
        mean = self._sum / self._n
        cov = self._outer / self._n - torch.outer(mean, mean)
        eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
        k = min(self.rank, cov.shape[0])
        self.basis = eigvecs[:, -k:].flip(-1).contiguous()
        self.mean = mean
        self._sum = self._outer = None
        return self

    def fit(self, x: Tensor) -> LowRankBasis:
        return self.update(x).finalize()

    @property
    def fitted(self) -> bool:
        return self.basis.numel() > 0

    def forward(self, x: Tensor) -> Tensor:
        if not self.fitted:
            raise StitchkitError("low-rank basis is used before it was fitted on reference activations")
        rows, restore = to_rows(x)
        if rows.shape[1] != self.mean.shape[0]:
            raise StitchkitError(f"low-rank basis expects {self.mean.shape[0]} features, got {rows.shape[1]}")
        mean = self.mean.to(rows.dtype)
        basis = self.basis.to(rows.dtype)
        centred = rows - mean
        return restore((centred @ basis) @ basis.T + mean).contiguous()
