"""Activation policy: how a layer's activations become the data matrix (n rows × d features) a measure sees.

The choice changes the numbers (references.md section 3), so it is an explicit option, recorded with
every result (:class:`~.compute.SimilarityResult`):

============== ===================== ===================== ==================================================
policy         (N, C, H, W) conv     (N, T, D) tokens      notes
============== ===================== ===================== ==================================================
flatten        N × C·H·W             N × T·D               channel-major (C outermost), like the original CKA
positions      N·H·W × C             N·T × D               every spatial position / token is a data point
pool           N × C (mean over H,W) N × D (mean over T)   global average pooling
cls            error                 N × D (token 0)       the CLS token
auto_original  the original's choice for the measure, see :func:`resolve_policy`
============== ===================== ===================== ==================================================

Vectors (N, D) are used as they are by every policy.

``auto_original`` reproduces ``compute_metrics`` of the original code (seed spec 1.7): ``flatten`` for
CKA; for PWCCA and Procrustes (and the other CCA measures) ``positions`` when both activations have the
same shape and ``pool`` otherwise. One deliberate fix: token activations with the same token count but
different widths D use ``positions`` (the original meant to, but crashed on a variable-reuse bug).
A conv activation paired with a token activation has no rule in the original; ``auto_original`` raises
and asks for an explicit policy. A vector activation (N, D) paired with a map is an extension: the map
is pooled. Direct matching (``dm_residual``) uses ``positions``, as stitching does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..activations.low_rank import to_rows
from ..activations.pooling import pool_features
from ..choices import POLICIES  # torch-free home of the names (the CLI reads them)
from ..errors import StitchkitError, UnknownNameError
from .base import MeasureInfo, fmt_shape

CONCRETE_POLICIES = POLICIES[:-1]


def as_tensor(x) -> Tensor:
    """``x`` (a tensor or array) as a tensor of activations, (N, C, H, W), (N, T, D) or (N, D)."""
    if not torch.is_tensor(x):
        x = torch.as_tensor(np.asarray(x))
    if x.dim() not in (2, 3, 4):
        raise StitchkitError(f"activations must have shape (N, C, H, W), (N, T, D) or (N, D), got {fmt_shape(x.shape)}")
    return x


def _check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise UnknownNameError(f"unknown activation policy {policy!r}; known policies: {', '.join(POLICIES)}")
    return policy


def matrix_shape(shape, policy: str) -> tuple[int, int]:
    """The (rows, features) that :func:`to_matrix` gives an activation of ``shape`` under ``policy``."""
    shape = tuple(int(s) for s in shape)
    _check_policy(policy)
    if policy == "auto_original":
        raise StitchkitError(
            "policy 'auto_original' depends on both activations and the measure; use paired_matrices(x, y, policy, "
            "measure) or resolve_policy(...) first"
        )
    if len(shape) not in (2, 3, 4):
        raise StitchkitError(f"activations must have shape (N, C, H, W), (N, T, D) or (N, D), got {fmt_shape(shape)}")
    if len(shape) == 2:
        return shape
    n, c = shape[0], shape[1]
    if policy == "flatten":
        return n, int(np.prod(shape[1:]))
    if policy == "cls":
        if len(shape) == 4:
            raise StitchkitError(
                f"policy 'cls' takes token 0 of token activations (N, T, D), but got a conv activation "
                f"{fmt_shape(shape)}; use 'pool', 'positions' or 'flatten'"
            )
        return n, shape[2]
    if len(shape) == 4:
        return (n * shape[2] * shape[3], c) if policy == "positions" else (n, c)
    return (n * shape[1], shape[2]) if policy == "positions" else (n, shape[2])


def to_matrix(x, policy: str) -> Tensor:
    """Turn an activation ((N, C, H, W), (N, T, D) or (N, D); tensor or array) into a data matrix.

    The dtype and device are kept (integer input becomes float32 for pooling).
    """
    x = as_tensor(x)
    matrix_shape(x.shape, policy)  # validates the policy and the shape
    if x.dim() == 2:
        return x
    if not x.is_floating_point():
        x = x.float()
    if policy == "positions":
        return to_rows(x)[0]
    return pool_features(x, {"flatten": "flatten", "pool": "avg", "cls": "cls"}[policy])


def _info(measure) -> MeasureInfo:
    if isinstance(measure, MeasureInfo):
        return measure
    info = getattr(measure, "info", None)
    if isinstance(info, MeasureInfo):
        return info
    from .registry import measure_info  # late import: the registry imports the measures, which import this

    return measure_info(str(measure))


def resolve_policy(x_shape, y_shape, policy: str, measure) -> str:
    """The concrete policy used for a pair of activations: ``policy`` itself, or the original's choice
    when ``policy="auto_original"`` (see the module docstring). ``measure`` is a name, a measure or its info.
    """
    _check_policy(policy)
    if policy != "auto_original":
        return policy
    info = _info(measure)
    x_shape, y_shape = tuple(int(s) for s in x_shape), tuple(int(s) for s in y_shape)
    if info.original_policy is None:
        raise StitchkitError(
            f"measure {info.name!r} is not computed from activation matrices, so it has no activation policy"
        )
    if info.original_policy == "flatten":
        return "flatten"
    if info.original_policy == "positions":
        return "positions"
    # positions_or_pool: the original's resize_for_cca2
    if len(x_shape) == len(y_shape) == 2:
        return "positions"
    if len(x_shape) == 2 or len(y_shape) == 2:
        return "pool"  # a vector layer (e.g. the penultimate one) with a map: pool the map (an extension)
    if len(x_shape) == len(y_shape) == 4:
        return "positions" if x_shape == y_shape else "pool"
    if len(x_shape) == len(y_shape) == 3:
        return "positions" if x_shape[1] == y_shape[1] else "pool"
    raise StitchkitError(
        f"policy 'auto_original' has no rule for activations {fmt_shape(x_shape)} and {fmt_shape(y_shape)} "
        f"(the original supports conv–conv and token–token pairs only); choose 'pool', 'flatten' or 'cls' explicitly"
    )


def check_paired(x_shape, y_shape, policy: str) -> None:
    """Raise, naming both shapes, when ``policy`` gives the two activations different row counts."""
    if int(x_shape[0]) != int(y_shape[0]):
        raise StitchkitError(
            f"the activations {fmt_shape(x_shape)} and {fmt_shape(y_shape)} have different numbers of samples; "
            f"similarity measures compare the same inputs on both sides"
        )
    rx, ry = matrix_shape(x_shape, policy)[0], matrix_shape(y_shape, policy)[0]
    if rx != ry:
        raise StitchkitError(
            f"policy {policy!r} turns activation {fmt_shape(x_shape)} into {rx} rows but {fmt_shape(y_shape)} into "
            f"{ry} rows; 'positions' needs equal spatial sizes or token counts, use 'pool' or 'flatten' otherwise"
        )


def paired_matrices(x, y, policy: str, measure) -> tuple[Tensor, Tensor]:
    """Both activations as data matrices with the same rows, under ``policy`` (``auto_original`` resolved
    for ``measure``; :func:`resolve_policy` says which concrete policy that was)."""
    x, y = as_tensor(x), as_tensor(y)
    concrete = resolve_policy(x.shape, y.shape, policy, measure)
    check_paired(x.shape, y.shape, concrete)
    return to_matrix(x, concrete), to_matrix(y, concrete)
