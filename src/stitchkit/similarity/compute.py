"""Measures on activations: the activation policy, low-rank truncation, result records, L × L matrices.

:func:`compute` takes two activations of any layout, optionally truncates them to a rank, turns them
into data matrices with an explicit policy (:mod:`.policy`) and returns a :class:`SimilarityResult`
that records every option that changes the number.

**Low rank.** ``rank_x``/``rank_y`` is None (full rank), an int r or a fitted
:class:`~stitchkit.activations.LowRankBasis`. An int applies :func:`~stitchkit.activations.low_rank` to
the *whole activation set* passed in, with channels (conv) or embedding dims (tokens) as features and
every position as a row — what the original's similarity script does with its 1000 images (seed spec
1.7 step 2, 1.9), before the policy. The modes of references.md section 3 differ only when the
truncation is recomputed per mini-batch; a measure sees the whole set at once, so here ``"fixed"``
(one basis for the set) and ``"per_batch"`` (the original's recomputation, on the one "batch" that is
the set) give the same matrices. Both are accepted and recorded; a basis fitted on another reference
set is passed as a ``LowRankBasis`` (a fixed basis, so only with ``low_rank_mode="fixed"``).

**Pairwise matrices.** :func:`pairwise_matrix` prepares each layer once (centring, Gram matrix, SVD; see
:mod:`.base`) and compares the prepared layers for every pair; memory is the sum of the prepared layers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..activations.low_rank import LowRankBasis, low_rank, to_rows, truncate
from ..choices import DEFAULT_POLICY  # torch-free home of the names (the CLI reads them)
from ..errors import StitchkitError
from ..ranks import Rank
from ..ranks import low_rank_mode as canonical_low_rank_mode  # its parameters are named low_rank_mode
from .base import Measure
from .policy import as_tensor, check_paired, resolve_policy, to_matrix
from .registry import get_measure

#: a rank (:mod:`stitchkit.ranks`) or a fitted basis of the layer (its rank is the basis's)
RankOrBasis = Rank | LowRankBasis


@dataclass(frozen=True)
class SimilarityResult:
    """One measure on one pair of activations, with everything that changes the number."""

    measure: str
    value: float
    kind: str  # "similarity" or "distance"
    policy: str  # as requested
    resolved_policy: str  # the concrete conversion used
    shape_x: tuple[int, ...]
    shape_y: tuple[int, ...]
    matrix_shape_x: tuple[int, int]
    matrix_shape_y: tuple[int, int]
    rank_x: Any  # None, an int, or "basis(r)" for a LowRankBasis
    rank_y: Any
    low_rank_mode: str
    options: dict = field(default_factory=dict)
    seconds: float = 0.0
    #: how sure the value is, when asked (:class:`~stitchkit.uncertainty.similarity.IndexUncertainty`
    #: as a dict: lower, upper, p_value, null_mean, calibrated; NaN where not computed)
    uncertainty: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["uncertainty"] is None:  # records without uncertainty keep their old shape
            del out["uncertainty"]
        return out


def _rank_label(rank: RankOrBasis):
    return f"basis({rank.rank})" if isinstance(rank, LowRankBasis) else rank


def apply_rank(
    x,
    rank: RankOrBasis,
    low_rank_mode: str = "fixed",
    dtype: torch.dtype = torch.float64,
    directions: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """The activation truncated to ``rank`` (see the module docstring), in ``dtype``; ``directions``
    (:func:`~stitchkit.activations.principal_directions` of the same activation) saves decomposing it
    again for every rank."""
    low_rank_mode = canonical_low_rank_mode(low_rank_mode)
    x = as_tensor(x)
    if rank is None:
        return x
    x = x.detach().to(dtype)
    if isinstance(rank, LowRankBasis):
        if low_rank_mode != "fixed":
            raise StitchkitError("a fitted LowRankBasis is a fixed basis; use low_rank_mode='fixed' with it")
        with torch.no_grad():
            return rank(x)
    if directions is not None and rank is not None and rank < to_rows(x)[0].shape[1]:
        return truncate(x, *directions, rank)
    return low_rank(x, rank)


def compute(
    measure: str | Measure,
    x,
    y,
    *,
    policy: str = "auto_original",
    rank_x: RankOrBasis = None,
    rank_y: RankOrBasis = None,
    low_rank_mode: str = "fixed",
    **options,
) -> SimilarityResult:
    """``measure`` on two activations ((N, C, H, W), (N, T, D) or (N, D); arrays or tensors).

    ``policy`` says how activations become matrices (:mod:`.policy`; ``auto_original`` is the original
    code's choice for the measure); ``options`` configure the measure (:func:`~.registry.get_measure`).
    """
    start = time.perf_counter()
    m = get_measure(measure, **options)
    x_act, y_act = as_tensor(x), as_tensor(y)
    concrete = resolve_policy(x_act.shape, y_act.shape, policy, m)
    check_paired(x_act.shape, y_act.shape, concrete)
    xm = to_matrix(apply_rank(x_act, rank_x, low_rank_mode, m.dtype), concrete)
    ym = to_matrix(apply_rank(y_act, rank_y, low_rank_mode, m.dtype), concrete)
    value = m(xm, ym)
    return SimilarityResult(
        measure=m.name,
        value=value,
        kind=m.info.kind,
        policy=policy,
        resolved_policy=concrete,
        shape_x=tuple(int(s) for s in x_act.shape),
        shape_y=tuple(int(s) for s in y_act.shape),
        matrix_shape_x=tuple(int(s) for s in xm.shape),
        matrix_shape_y=tuple(int(s) for s in ym.shape),
        rank_x=_rank_label(rank_x),
        rank_y=_rank_label(rank_y),
        low_rank_mode=low_rank_mode,
        options=m.options,
        seconds=time.perf_counter() - start,
    )


def _per_layer(rank, name) -> RankOrBasis:
    if isinstance(rank, Mapping):
        return rank.get(name)
    return rank


def pairwise_matrix(
    measure: str | Measure,
    acts_a: Mapping[str, Any],
    acts_b: Mapping[str, Any] | None = None,
    *,
    policy: str = DEFAULT_POLICY,
    rank_a: RankOrBasis | Mapping[str, RankOrBasis] = None,
    rank_b: RankOrBasis | Mapping[str, RankOrBasis] = None,
    low_rank_mode: str = "fixed",
    **options,
) -> tuple[np.ndarray, list[str], list[str]]:
    """``matrix[i, j] = measure(acts_a[row i], acts_b[col j])`` for every pair of layers.

    Each layer is truncated (``rank_a``/``rank_b``: one value for all layers or a dict by layer name),
    converted and *prepared once* (per concrete policy), then every pair is compared. ``acts_b=None``
    compares ``acts_a`` with itself; for a symmetric measure only one triangle is computed then.
    Returns the float64 matrix, the row names and the column names.
    """
    m = get_measure(measure, **options)
    low_rank_mode = canonical_low_rank_mode(low_rank_mode)
    same = acts_b is None or (acts_b is acts_a and rank_b is rank_a)
    if acts_b is None:
        acts_b, rank_b = acts_a, rank_a
    if not acts_a or not acts_b:
        raise StitchkitError("pairwise_matrix needs at least one layer on each side")
    rows, cols = list(acts_a), list(acts_b)
    truncated: dict[tuple[str, str], Tensor] = {}
    prepared: dict[tuple[str, str, str], Any] = {}

    def act(side: str, name: str) -> Tensor:
        key = ("a" if same else side, name)
        if key not in truncated:
            src, rank = (acts_a, rank_a) if side == "a" else (acts_b, rank_b)
            truncated[key] = apply_rank(src[name], _per_layer(rank, name), low_rank_mode, m.dtype)
        return truncated[key]

    def prep(side: str, name: str, concrete: str):
        key = ("a" if same else side, name, concrete)
        if key not in prepared:
            prepared[key] = m.prepare(to_matrix(act(side, name), concrete))
        return prepared[key]

    out = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if same and m.info.symmetric and j < i:
                out[i, j] = out[j, i]
                continue
            xa, yb = act("a", r), act("b", c)
            concrete = resolve_policy(xa.shape, yb.shape, policy, m)
            try:
                check_paired(xa.shape, yb.shape, concrete)
            except StitchkitError as e:
                raise StitchkitError(f"layers {r!r} and {c!r}: {e}") from None
            out[i, j] = m.compare(prep("a", r, concrete), prep("b", c, concrete))
    return out, rows, cols
