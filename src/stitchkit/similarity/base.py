"""What every similarity measure shares: its metadata, the prepare/compare protocol, input checks.

A measure compares two *data matrices* with one row per data point and one column per feature,
``X (n × p)`` and ``Y (n × q)``, row i of both describing the same input (see :mod:`.policy` for how
activations become matrices). Every measure is computed in two steps:

* ``prepare(X)`` — everything that depends on one matrix alone (centring, a Gram matrix, an SVD). It is
  computed once per layer and reused for every pair that layer is in (:func:`~.compute.pairwise_matrix`);
* ``compare(prepared_x, prepared_y) -> float`` — the part that needs both.

``measure(X, Y)`` is ``compare(prepare(X), prepare(Y))``. Inputs may be numpy arrays or torch tensors
on any device; the computation runs in ``dtype`` (float64 by default, for exactness) on the device of X.

**Invariances** are declared for each argument *independently*: a measure is invariant to a group G
when ``m(T₁(X), T₂(Y)) = m(X, Y)`` for any T₁, T₂ in G drawn separately. The groups:

=================== ============================================================================
name                transformation of a matrix X (n × p)
=================== ============================================================================
orthogonal          X Q, Q a p × p orthogonal matrix
isotropic_scaling   a X, a > 0
translation         X + 1 cᵀ, c a p-vector (the same shift for every data point)
invertible_linear   X A, A a p × p invertible matrix
permutation         X P, P a permutation of the features
=================== ============================================================================
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..declarations import DeclarationError, declaration_of
from ..errors import StitchkitError

INVARIANCES = ("orthogonal", "isotropic_scaling", "translation", "invertible_linear", "permutation")
KINDS = ("similarity", "distance")

#: How ``policy="auto_original"`` turns a measure's activations into matrices (see :mod:`.policy`):
#: "flatten" (the original's CKA), "positions_or_pool" (its PWCCA and Procrustes), "positions"
#: (direct matching: every spatial position or token is a row).
ORIGINAL_POLICIES = ("flatten", "positions_or_pool", "positions")


@dataclass(frozen=True)
class MeasureInfo:
    """Metadata of a registered measure; the tests check every field against the computation."""

    name: str
    #: "similarity" (higher = more similar) or "distance" (lower = more similar)
    kind: str
    #: the closed interval every value lies in
    range: tuple[float, float]
    #: m(X, Y) = m(Y, X)
    symmetric: bool
    #: subset of :data:`INVARIANCES`; each holds for the two arguments independently
    invariances: frozenset[str]
    description: str
    citation: str
    #: computed from models (stitching accuracies), not from activation arrays
    requires_models: bool = False
    #: what ``policy="auto_original"`` does for this measure (one of :data:`ORIGINAL_POLICIES`)
    original_policy: str | None = None

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind
        assert set(self.invariances) <= set(INVARIANCES), self.invariances
        assert self.original_policy in ORIGINAL_POLICIES + (None,), self.original_policy

    @property
    def higher_is_more_similar(self) -> bool:
        return self.kind == "similarity"

    def dissimilarity(self, value: float) -> float:
        """``value`` as a dissimilarity that is 0 for the most similar pair: ``hi − value`` for a
        similarity with range [lo, hi], ``value − lo`` for a distance (used by the sensitivity and
        specificity tests, which rank pairs by dissimilarity)."""
        lo, hi = self.range
        return float(hi - value) if self.kind == "similarity" else float(value - lo)


#: what a measure's declaration (``@declare("measure", name, ...)``) states besides its name and order
DECLARED_FIELDS = ("kind", "range", "symmetric", "invariances", "description", "citation", "requires_models")


def declared_info(cls: type) -> MeasureInfo:
    """The metadata of the measure class ``cls``, from its declaration; ``original_policy`` may be left out."""
    decl = declaration_of("measure", cls)
    missing = [key for key in DECLARED_FIELDS if key not in decl.meta]
    if missing:
        raise DeclarationError(f"measure {decl.name!r} ({decl.source}) does not declare {', '.join(missing)}")
    meta = decl.meta
    return MeasureInfo(
        name=decl.name,
        kind=meta["kind"],
        range=tuple(meta["range"]),
        symmetric=meta["symmetric"],
        invariances=frozenset(meta["invariances"]),
        description=meta["description"],
        citation=meta["citation"],
        requires_models=meta["requires_models"],
        original_policy=meta.get("original_policy"),
    )


class _DeclaredInfo:
    """``Measure.info``: read from the class's declaration on first use, then kept on the class."""

    def __get__(self, obj: Any, owner: type) -> MeasureInfo:
        info = owner.__dict__.get("_declared_info")
        if info is None:
            info = declared_info(owner)
            owner._declared_info = info  # the class's own attribute: a subclass reads its own declaration
        return info


_DTYPES = {"float64": torch.float64, "double": torch.float64, "float32": torch.float32, "float": torch.float32}


def resolve_dtype(dtype) -> torch.dtype:
    """A torch floating dtype from a dtype or its name ("float64", "float32")."""
    if isinstance(dtype, torch.dtype) and dtype in (torch.float64, torch.float32):
        return dtype
    if isinstance(dtype, str) and dtype.replace("torch.", "") in _DTYPES:
        return _DTYPES[dtype.replace("torch.", "")]
    raise StitchkitError(f"dtype must be float64 or float32 (a torch dtype or its name), got {dtype!r}")


def fmt_shape(shape) -> str:
    return str(tuple(int(s) for s in shape))


def as_matrix(x, dtype: torch.dtype = torch.float64, device=None, name: str = "X") -> Tensor:
    """``x`` (numpy array or tensor) as a 2-D float tensor in ``dtype`` on ``device`` (default: its own)."""
    if not torch.is_tensor(x):
        x = torch.as_tensor(np.asarray(x))
    if x.dim() != 2:
        raise StitchkitError(
            f"{name} must be a (samples, features) matrix, got shape {fmt_shape(x.shape)}; turn activations "
            f"into matrices with stitchkit.similarity.to_matrix(x, policy) or use compute(..., policy=...)"
        )
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise StitchkitError(f"{name} needs at least 2 samples and 1 feature, got shape {fmt_shape(x.shape)}")
    x = x.detach().to(device=device if device is not None else x.device, dtype=dtype)
    if not bool(torch.isfinite(x).all()):
        raise StitchkitError(f"{name} contains NaN or infinite values")
    return x


def centre(x: Tensor) -> Tensor:
    """Subtract the mean of every column (feature)."""
    return x - x.mean(dim=0, keepdim=True)


def rank_tolerance(s: Tensor, shape, rcond: float | None) -> float:
    """Singular values at or below this count as zero: ``rcond · s_max`` with numpy's matrix_rank
    default ``rcond = max(n, p) · eps``."""
    if rcond is None:
        rcond = max(int(shape[0]), int(shape[1])) * torch.finfo(s.dtype).eps
    if not (rcond >= 0):
        raise StitchkitError(f"rcond must be a non-negative number, got {rcond!r}")
    return float(s[0]) * rcond if s.numel() else 0.0


@dataclass
class Prepared:
    """Base of the per-matrix precomputations: the number of data points and of features."""

    n: int
    d: int
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


class Measure:
    """A similarity measure; subclasses are declared (``@declare("measure", name, ...)``, which gives
    :attr:`info`) and implement :meth:`prepare` and :meth:`compare`.

    Options are keyword-only constructor arguments; :attr:`options` lists their values (recorded with
    every result).
    """

    info: ClassVar[MeasureInfo] = _DeclaredInfo()  # type: ignore[assignment]

    def __init__(self, *, dtype=torch.float64):
        self.dtype = resolve_dtype(dtype)

    # -- the protocol -------------------------------------------------------------------------------
    def prepare(self, x) -> Prepared:  # pragma: no cover - abstract
        raise NotImplementedError

    def compare(self, a: Prepared, b: Prepared) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x, y) -> float:
        x = as_matrix(x, self.dtype, name="X")
        y = as_matrix(y, self.dtype, device=x.device, name="Y")
        check_same_rows(x.shape, y.shape, self.info.name)
        return self.compare(self.prepare(x), self.prepare(y))

    # -- helpers ------------------------------------------------------------------------------------
    def _matrix(self, x, name: str = "X") -> Tensor:
        return as_matrix(x, self.dtype, name=name)

    def _check_pair(self, a: Prepared, b: Prepared) -> None:
        if a.n != b.n:
            raise StitchkitError(
                f"{self.info.name} compares the same data points on both sides, got {a.n} rows and {b.n} rows"
            )

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def options(self) -> dict[str, Any]:
        """The measure's options as plain values (dtypes as their names)."""
        out = {}
        for p in inspect.signature(type(self).__init__).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                v = getattr(self, p.name)
                out[p.name] = str(v).replace("torch.", "") if isinstance(v, torch.dtype) else v
        return out

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


def check_same_rows(shape_x, shape_y, what: str) -> None:
    if int(shape_x[0]) != int(shape_y[0]):
        raise StitchkitError(
            f"{what} needs the same data points (rows) in X and Y, got X {fmt_shape(shape_x)} and Y "
            f"{fmt_shape(shape_y)}"
        )


def clamp(v: float, lo: float, hi: float) -> float:
    """Clip rounding excursions (of the order of 1e-15) back into the declared range."""
    return min(max(float(v), lo), hi)
