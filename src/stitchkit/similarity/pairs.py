"""Many measures on many pairs of representations, each activation truncated and prepared at most once.

A *representation* is a layer of a network at a rank: ``Rep(network, layer, rank)`` (rank None = full).
:class:`RepresentationBank` holds the activations of several networks' layers (one extraction per
network and sample set, e.g. from :func:`~stitchkit.activations.extract_activations`) and computes, on
demand and once each,

* the truncated activation of every (network, layer, rank) (:func:`~.compute.apply_rank`), and
* the prepared matrix of every (measure, network, layer, rank, concrete policy) (a centred Gram
  matrix, an SVD; see :mod:`.base`),

so an L × L matrix costs L preparations per side and L² cheap comparisons, and a grid of ranks
truncates every layer once per rank. :func:`similarity_table` is the all-pairs (or matching-pairs)
table over two networks, ranks and measures that ``stitchkit similarity`` prints.

**Direct matching between different spatial sizes.** ``dm_residual`` uses every spatial position as a
data point, which needs the same H × W on both sides. Under ``policy="auto_original"`` the source
activation (X, the first argument) is resized to the target's H × W first, bilinearly with
``align_corners=False`` and no antialiasing — what the stitching layer does before its 1 × 1
convolution (``rc2c_pre``, seed spec 1.3). The truncation to a rank happens before the resize. The
record's ``resolved_policy`` says ``positions+resize``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..activations.low_rank import principal_directions
from ..errors import StitchkitError
from ..ranks import low_rank_mode as canonical_low_rank_mode  # its parameters are named low_rank_mode
from ..ranks import rank_used
from ..uncertainty.similarity import (
    PreparedSide,
    UncertaintyPlan,
    bootstrap_values,
    fixed_fit_values,
    pair_uncertainty,
    resampling_state,
    row_weights,
)
from .base import Measure
from .compute import SimilarityResult, apply_rank
from .direct import DMResidual
from .policy import as_tensor, check_paired, resolve_policy, to_matrix
from .registry import get_measure, measure_info
from .settings import SimilaritySettings


class Rep(NamedTuple):
    """One representation: a network's layer at a rank (None = full rank)."""

    network: str
    layer: str
    rank: int | None = None

    def label(self) -> str:
        return f"{self.network}/{self.layer}@{'full' if self.rank is None else self.rank}"


RESIZED = "positions+resize"


class RepresentationBank:
    """Activations of several networks, ``{network: {layer: activation}}``, truncated and prepared lazily.

    ``compare(measure, x, y)`` gives ``measure(X, Y)`` for two :class:`Rep` as a
    :class:`~.compute.SimilarityResult`. Activations may be tensors, arrays or memory-mapped tensors;
    ``low_rank_mode`` is recorded (both modes give the same matrices on a whole sample set, see
    :mod:`.compute`). ``forget`` drops cached truncations and preparations to bound memory.
    """

    def __init__(
        self,
        activations: Mapping[str, Mapping[str, Any]],
        *,
        low_rank_mode: str = "fixed",
        dtype: torch.dtype = torch.float64,
    ):
        if not activations:
            raise StitchkitError("a representation bank needs the activations of at least one network")
        self.activations = {str(net): dict(layers) for net, layers in activations.items()}
        self.low_rank_mode = canonical_low_rank_mode(low_rank_mode)
        self.dtype = dtype
        self._truncated: dict[Rep, Tensor] = {}
        self._spectra: dict[tuple[str, str], tuple[Tensor, Tensor]] = {}
        self._prepared: dict[tuple, Any] = {}
        self._matrices: dict[tuple, tuple[Tensor, Any]] = {}  # data matrix and resampling state (uncertainty only)
        self.counts = {"truncations": 0, "preparations": 0, "comparisons": 0}

    # -- activations --------------------------------------------------------------------------------
    def activation(self, network: str, layer: str) -> Tensor:
        if network not in self.activations:
            raise StitchkitError(f"unknown network {network!r}; the bank holds {', '.join(self.activations)}")
        layers = self.activations[network]
        if layer not in layers:
            raise StitchkitError(
                f"network {network!r} has no activations of layer {layer!r}; it has {', '.join(layers)}"
            )
        return as_tensor(layers[layer])

    def truncated(self, rep: Rep) -> Tensor:
        rep = Rep(*rep)
        if rep not in self._truncated:
            x = self.activation(rep.network, rep.layer)
            if rep.rank is not None:
                x = apply_rank(x, int(rep.rank), self.low_rank_mode, self.dtype, directions=self._directions(rep, x))
                self.counts["truncations"] += 1
            self._truncated[rep] = x
        return self._truncated[rep]

    def _directions(self, rep: Rep, x: Tensor) -> tuple[Tensor, Tensor]:
        """One decomposition of a layer's activations for all of its ranks."""
        key = (rep.network, rep.layer)
        if key not in self._spectra:
            self._spectra[key] = principal_directions(x.detach().to(self.dtype))
        return self._spectra[key]

    def prepared(self, measure: Measure, rep: Rep, concrete: str, size: tuple[int, int] | None = None):
        rep = Rep(*rep)
        key = (measure.name, repr(sorted(measure.options.items())), rep, concrete, size)
        if key not in self._prepared:
            x = self.truncated(rep)
            if size is not None:
                x = F.interpolate(x.to(measure.dtype), size=size, mode="bilinear", align_corners=False)
            self._prepared[key] = measure.prepare(to_matrix(x, concrete))
            self.counts["preparations"] += 1
        return self._prepared[key]

    def resampling(
        self, measure: Measure, rep: Rep, concrete: str, size: tuple[int, int] | None = None
    ) -> tuple[Tensor, Any]:
        """The data matrix of a prepared representation and its resampling state (the Gram matrices of
        CKA; :func:`~stitchkit.uncertainty.similarity.resampling_state`), once each: for uncertainty."""
        rep = Rep(*rep)
        key = (measure.name, repr(sorted(measure.options.items())), rep, concrete, size)
        if key not in self._matrices:
            prep = self.prepared(measure, rep, concrete, size)
            x = self.truncated(rep)
            if size is not None:
                x = F.interpolate(x.to(measure.dtype), size=size, mode="bilinear", align_corners=False)
            matrix = to_matrix(x, concrete).to(measure.dtype)
            self._matrices[key] = (matrix, resampling_state(measure, prep, matrix))
        return self._matrices[key]

    def forget(self, *, network: str | None = None, rank: Any = ..., prepared_only: bool = False) -> None:
        """Drop cached truncations (unless ``prepared_only``) and preparations of ``network`` (all by
        default) at ``rank`` (all by default)."""

        def hit(rep: Rep) -> bool:
            return (network is None or rep.network == network) and (rank is ... or rep.rank == rank)

        self._prepared = {k: v for k, v in self._prepared.items() if not hit(k[2])}
        self._matrices = {k: v for k, v in self._matrices.items() if not hit(k[2])}
        if not prepared_only:
            self._truncated = {k: v for k, v in self._truncated.items() if not hit(k)}
            if rank is ...:
                self._spectra = {k: v for k, v in self._spectra.items() if network is not None and k[0] != network}

    # -- comparing ----------------------------------------------------------------------------------
    def _pair(self, measure: str | Measure, x: Rep, y: Rep, policy: str, options: dict) -> tuple:
        """(measure, x, y, X's and Y's truncated activations, concrete policy, the size X is resized to or None),
        checked to pair."""
        m = get_measure(measure, **options)
        if m.info.requires_models:
            m(None, None)  # raises the measure's own explanation
        x, y = Rep(*x), Rep(*y)
        xa, ya = self.truncated(x), self.truncated(y)
        concrete = resolve_policy(xa.shape, ya.shape, policy, m)
        size = None
        if (
            policy == "auto_original"
            and m.info.original_policy == "positions"
            and xa.dim() == 4
            and ya.dim() == 4
            and tuple(xa.shape[2:]) != tuple(ya.shape[2:])
        ):
            size = (int(ya.shape[2]), int(ya.shape[3]))
        shape_x = tuple(int(s) for s in xa.shape) if size is None else (*tuple(int(s) for s in xa.shape[:2]), *size)
        try:
            check_paired(shape_x, ya.shape, concrete)
        except StitchkitError as e:
            raise StitchkitError(f"{x.label()} and {y.label()}: {e}") from None
        return m, x, y, xa, ya, concrete, size

    def resampled(
        self, measure: str | Measure, x: Rep, y: Rep, counts: np.ndarray, *, policy: str = "auto_original", **options
    ) -> np.ndarray:
        """``measure(X, Y)`` on each bootstrap resample of the images (``counts`` (B, images), e.g.
        :func:`~stitchkit.uncertainty.bootstrap.resample_counts`), clipped to the measure's range: the
        batched recomputations of :func:`~stitchkit.uncertainty.similarity.bootstrap_values`, except that
        ``dm_residual`` keeps the whole sample's fit (:func:`~stitchkit.uncertainty.similarity.fixed_fit_values`)."""
        m, x, y, xa, ya, concrete, size = self._pair(measure, x, y, policy, options)
        if counts.ndim != 2 or counts.shape[1] != xa.shape[0]:
            raise StitchkitError(f"resample counts of shape {tuple(counts.shape)} do not fit {int(xa.shape[0])} images")
        px, py = self.prepared(m, x, concrete, size), self.prepared(m, y, concrete)
        (mx, sx), (my, sy) = self.resampling(m, x, concrete, size), self.resampling(m, y, concrete)
        w = torch.as_tensor(row_weights(counts, int(mx.shape[0])), dtype=m.dtype, device=mx.device)
        with torch.no_grad():
            values = (
                fixed_fit_values(m, px, py, w)
                if isinstance(m, DMResidual)
                else bootstrap_values(m, px, py, mx, my, w, sx, sy)
            )
        lo, hi = m.info.range
        return np.clip(values.cpu().numpy().astype(np.float64), lo, hi)

    def compare(
        self,
        measure: str | Measure,
        x: Rep,
        y: Rep,
        *,
        policy: str = "auto_original",
        uncertainty: UncertaintyPlan | None = None,
        **options,
    ) -> SimilarityResult:
        """``measure(X, Y)`` with X the representation ``x`` (the source, for asymmetric measures) and Y ``y``;
        with an ``uncertainty`` plan, also its bootstrap interval and permutation null over the images."""
        start = time.perf_counter()
        m, x, y, xa, ya, concrete, size = self._pair(measure, x, y, policy, options)
        px, py = self.prepared(m, x, concrete, size), self.prepared(m, y, concrete)
        value = m.compare(px, py)
        self.counts["comparisons"] += 1
        sure = None
        if uncertainty is not None and uncertainty.enabled:
            (mx, sx), (my, sy) = self.resampling(m, x, concrete, size), self.resampling(m, y, concrete)
            sides = PreparedSide(prep=px, x=mx, state=sx), PreparedSide(prep=py, x=my, state=sy)
            sure = pair_uncertainty(m, *sides, uncertainty, images=int(xa.shape[0]), value=value).to_dict()
        return SimilarityResult(
            measure=m.name,
            value=float(value),
            kind=m.info.kind,
            policy=policy,
            resolved_policy=RESIZED if size else concrete,
            shape_x=tuple(int(s) for s in xa.shape),
            shape_y=tuple(int(s) for s in ya.shape),
            matrix_shape_x=(px.n, px.d),
            matrix_shape_y=(py.n, py.d),
            rank_x=x.rank,
            rank_y=y.rank,
            low_rank_mode=self.low_rank_mode,
            options=m.options,
            seconds=time.perf_counter() - start,
            uncertainty=sure,
        )


@dataclass(frozen=True)
class PairResult:
    """A measure on one pair of representations: which pair, and the :class:`SimilarityResult`."""

    x: Rep
    y: Rep
    result: SimilarityResult

    @property
    def value(self) -> float:
        return self.result.value

    @property
    def dissimilarity(self) -> float:
        return measure_info(self.result.measure).dissimilarity(self.result.value)

    @property
    def rank_used_x(self) -> int | None:
        """The rank X really has: its rank capped at the layer's channel (feature) count."""
        return _rank_used(self.x.rank, self.result.shape_x)

    @property
    def rank_used_y(self) -> int | None:
        return _rank_used(self.y.rank, self.result.shape_y)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "network_x": self.x.network,
            "layer_x": self.x.layer,
            "network_y": self.y.network,
            "layer_y": self.y.layer,
        }
        out.update(self.result.to_dict())
        out["dissimilarity"] = self.dissimilarity
        out["rank_used_x"], out["rank_used_y"] = self.rank_used_x, self.rank_used_y
        return out


def _rank_used(rank: int | None, shape: Sequence[int]) -> int | None:
    """``rank`` capped at the features of an activation of ``shape`` (with the batch): channels of
    (N, C, H, W), the embedding of (N, T, D) and (N, D)."""
    if rank is None or not isinstance(rank, int):
        return rank
    return rank_used(rank, shape[1:])


def layer_pairs(layers_x: Sequence[str], layers_y: Sequence[str], all_pairs: bool) -> list[tuple[str, str]]:
    """Every (x, y) pair, or the matching pairs (i-th with i-th) when not ``all_pairs``."""
    if all_pairs:
        return [(a, b) for a in layers_x for b in layers_y]
    if len(layers_x) != len(layers_y):
        raise StitchkitError(
            f"matching layer pairs need as many layers on both sides, got {len(layers_x)} and {len(layers_y)}; ask "
            f"for all pairs instead"
        )
    return list(zip(layers_x, layers_y))


def similarity_table(
    measures: Iterable[str | Measure],
    acts_x: Mapping[str, Any],
    acts_y: Mapping[str, Any] | None = None,
    *,
    layers_x: Sequence[str] | None = None,
    layers_y: Sequence[str] | None = None,
    names: tuple[str, str] = ("model1", "model2"),
    settings: SimilaritySettings | None = None,
) -> list[PairResult]:
    """Every measure on every (layer pair, rank pair) of two networks' activations ``{layer: activation}``.

    ``settings`` (:class:`~.settings.SimilaritySettings`; None: its defaults with ``all_pairs=True``)
    gives the table's ``ranks_x``, ``ranks_y``, ``all_pairs``, ``policy``, ``low_rank_mode`` and
    uncertainty (``bootstrap``, ``permutations``, ``level``, ``uncertainty_seed``).
    ``acts_y=None`` compares the network with itself (then a symmetric measure at equal ranks is
    computed on one triangle and mirrored). Each layer is truncated once per rank and prepared once
    per (measure, rank, policy). Results are ordered by rank x, rank y, measure, then layer pair.
    The uncertainty adds each value's bootstrap interval and permutation p-value (the same resampled
    images for every pair; :mod:`stitchkit.uncertainty.similarity`).
    """
    s = settings or SimilaritySettings(all_pairs=True)
    ranks_x, ranks_y, policy = s.ranks_x, s.ranks_y, s.policy
    plan = s.uncertainty()
    uncertainty = plan if plan.enabled else None
    same = acts_y is None or acts_y is acts_x
    name_x, name_y = names
    if same:
        acts_y, name_y = acts_x, name_x
    layers_x = list(layers_x) if layers_x else list(acts_x)
    layers_y = list(layers_y) if layers_y else list(acts_y)  # type: ignore[arg-type]
    pairs = layer_pairs(layers_x, layers_y, s.all_pairs)
    measures = [get_measure(m) for m in measures]
    if not measures:
        raise StitchkitError("no measures given")
    for m in measures:
        if m.info.requires_models:
            raise StitchkitError(
                f"{m.name} is computed from two models and data, not from activations: use `stitchkit stitch`"
            )
    bank = RepresentationBank(
        {name_x: acts_x} if same else {name_x: acts_x, name_y: acts_y}, low_rank_mode=s.low_rank_mode
    )
    out: list[PairResult] = []
    for i, rx in enumerate(ranks_x):
        for ry in ranks_y:
            for m in measures:
                done: dict[tuple[str, str], SimilarityResult] = {}
                for lx, ly in pairs:
                    x, y = Rep(name_x, lx, rx), Rep(name_y, ly, ry)
                    if same and rx == ry and m.info.symmetric and (ly, lx) in done:
                        mirrored = done[(ly, lx)]
                        result = SimilarityResult(
                            **{
                                **mirrored.to_dict(),
                                "shape_x": mirrored.shape_y,
                                "shape_y": mirrored.shape_x,
                                "matrix_shape_x": mirrored.matrix_shape_y,
                                "matrix_shape_y": mirrored.matrix_shape_x,
                                "seconds": 0.0,
                            }
                        )
                    else:
                        result = bank.compare(m, x, y, policy=policy, uncertainty=uncertainty)
                    done[(lx, ly)] = result
                    out.append(PairResult(x, y, result))
        # Truncations of x at this rank are not needed again (unless y shares them).
        if not (same and rx in ranks_y) and rx not in ranks_x[i + 1 :]:
            bank.forget(network=name_x, rank=rx)
    return out


def result_matrix(
    results: Sequence[PairResult], measure: str, *, rank_x=None, rank_y=None, field: str = "value"
) -> tuple[np.ndarray, list[str], list[str]]:
    """The L × L' matrix of ``measure`` at one rank pair from a :func:`similarity_table` (NaN where missing);
    ``field`` another number of each record's uncertainty (``lower``, ``upper``, ``p_value``, ``calibrated``, …)."""
    chosen = [r for r in results if r.result.measure == measure and r.x.rank == rank_x and r.y.rank == rank_y]
    rows = list(dict.fromkeys(r.x.layer for r in chosen))
    cols = list(dict.fromkeys(r.y.layer for r in chosen))
    out = np.full((len(rows), len(cols)), np.nan)
    for r in chosen:
        if field == "value":
            out[rows.index(r.x.layer), cols.index(r.y.layer)] = r.value
        elif r.result.uncertainty is not None:
            out[rows.index(r.x.layer), cols.index(r.y.layer)] = r.result.uncertainty.get(field, np.nan)
    return out, rows, cols


def mixed_policies(results: Sequence[PairResult]) -> dict[str, list[str]]:
    """The measures whose matrices mix computations: ``{measure: [concrete policies]}`` for every measure
    with a matrix (one rank pair) whose cells were converted by more than one concrete policy (what
    ``policy="auto_original"`` does when the layers' shapes differ); empty when every matrix is uniform."""
    seen: dict[tuple[str, Any, Any], set[str]] = {}
    for r in results:
        # direct matching's resized source is still every spatial position (as stitching does it)
        seen.setdefault((r.result.measure, r.x.rank, r.y.rank), set()).add(
            r.result.resolved_policy.removesuffix("+resize")
        )
    out: dict[str, set[str]] = {}
    for (measure, _, _), policies in seen.items():
        if len(policies) > 1:
            out.setdefault(measure, set()).update(policies)
    return {measure: sorted(policies) for measure, policies in out.items()}


def describe_mixed(mixed: Mapping[str, Sequence[str]], policy: str) -> str:
    """One sentence on the matrices that :func:`mixed_policies` found mixed ('' when none is)."""
    if not mixed:
        return ""
    which = "; ".join(f"{measure}: {' and '.join(policies)}" for measure, policies in mixed.items())
    return (
        f"policy {policy!r} computes the cells of one matrix in different ways ({which}): same-shape pairs over "
        f"spatial positions, the others over pooled channels, so their values are not comparable across the matrix; "
        f"use policy 'pool' (the default) for one computation throughout"
    )
