"""Fitting and evaluating a :class:`~stitchkit.stitching.stitcher.Stitcher`: direct matching (DM), and a
single pair's task loss matching (TLM) and evaluation, each a grid of one.

Direct matching consumes *pair batches* ``(front_activation, end_activation, labels)`` from a
re-iterable source, so the same code serves a single stitch (activations computed on the fly from
images, :func:`image_pairs`) and a layer grid (activations extracted once and reused by every pair,
:func:`cached_pairs`):

* :func:`fit_direct_match` — the least-squares affine map from the stitching layer's transform input
  (``pre_transform`` of the front activation, e.g. the resized map for rc2c_pre) to the end layer's
  output, streamed in float64 (:func:`~stitchkit.stitching.direct_match.direct_match`), so memory does
  not grow with the number of fit images.
* :func:`task_loss_match` — trains only the stitching layer on cross-entropy (+ an optional L1 penalty
  on the transform's weight and bias, the original's ``-l1``): the grouped trainer
  (:func:`~.grouped.grouped_task_loss_match`) on a grid of one.
* :func:`evaluate_stitcher` — accuracy, loss and the residual ‖T(f(x)) − g(x)‖²/‖g(x)‖² of the installed
  map (pooled, and the original's mean of per-batch ratios), optionally the donors' own accuracies, in
  one pass: the grouped evaluation (:func:`~.grid_evaluation.grouped_evaluate`) of a grid of one.

Low-rank sources. ``--front-stitch-rank`` (the stitcher's :class:`~.stitcher.SourceReducer`) and
``--front-pinv-rank`` (the ``rank`` of :func:`fit_direct_match`) both truncate the **front activation**,
before the stitching layer's resizing. The original truncated the *resized* transform input for the pinv
fit but the un-resized front activation for stitching, two different definitions of "source rank"
(spec 6.1); stitchkit uses one. With a fixed basis the two orders agree anyway (a channel projection
commutes with a spatial resize that preserves constants).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..activations.extract import Activations
from ..stitch_methods import DEFAULT_DM_SOLVER
from ..training.loop import EpochLog, LoopSettings
from ..training.optim import OptimConfig
from .direct_match import DirectMatchResult, LeastSquaresAccumulator, direct_match, paired_rows
from .grid_evaluation import EvalOptions, StitchEvaluation, grouped_evaluate
from .grouped import GridPair, GridPass, grouped_task_loss_match
from .stitcher import SourceReducer, Stitcher

PairBatch = tuple[Tensor, Tensor, Tensor]
#: A re-iterable source of pair batches: calling it starts a fresh pass.
PairSource = Callable[[], Iterator[PairBatch]]


# --- sources of pair batches ----------------------------------------------------------------------
def image_pairs(
    stitcher: Stitcher, loader: Iterable, device: torch.device | str, *, need_end: bool = True
) -> PairSource:
    """Pair batches computed on the fly: ``front prefix(x)``, ``end prefix(x)`` (only with
    ``need_end``; else an empty tensor), labels."""
    device = torch.device(device)

    @torch.no_grad()
    def source() -> Iterator[PairBatch]:
        for inputs, labels in loader:
            x = inputs.to(device, non_blocking=True)
            front = stitcher.front(x)
            end = stitcher.end_prefix(x) if need_end else torch.empty(0, device=device)
            yield front, end, torch.as_tensor(labels).to(device)

    return source


def cached_pairs(
    front: Activations, front_layer: str, end: Activations, end_layer: str, batch_size: int, device: torch.device | str
) -> PairSource:
    """Pair batches read from extracted activations (tensors or memmaps) of the same samples in order."""
    device = torch.device(device)
    if len(front) != len(end):
        raise ValueError(f"front and end activations cover {len(front)} and {len(end)} samples")
    fa, ea, labels = front[front_layer], end[end_layer], front.labels

    def source() -> Iterator[PairBatch]:
        for start in range(0, len(front), batch_size):
            stop = start + batch_size
            yield fa[start:stop].to(device), ea[start:stop].to(device), labels[start:stop].to(device)

    return source


# --- direct matching --------------------------------------------------------------------------------
@torch.no_grad()
def fit_direct_match(
    stitcher: Stitcher,
    pairs: PairSource,
    *,
    rank: int | None = None,
    low_rank_mode: str = "fixed",
    rcond: float | None = None,
    solver: str = DEFAULT_DM_SOLVER,
) -> DirectMatchResult:
    """Fit and install the stitching layer's transform by direct matching on ``pairs``.

    ``rank`` (``--front-pinv-rank``) fits from a low-rank front activation: in ``"fixed"`` mode a basis
    estimated on the same fit samples (one extra pass), in ``"per-batch"`` mode the original's truncation
    of each fit batch (the original truncated all K samples at once: the same when K ≤ batch size).
    When ``rank`` and mode equal the stitcher's own (``--front-stitch-rank``), its reducer is reused.
    The result's ``residual`` is the in-sample residual of the installed map on that source.
    ``solver`` is stitchkit's least squares or the original's float32 pinv (:mod:`.original_solver`).
    """
    reducer = stitcher.reduce
    if rank != reducer.rank or low_rank_mode != reducer.mode:
        reducer = SourceReducer(rank, low_rank_mode).to(_device_of(stitcher))
    if reducer.needs_fit:
        for front, _, _ in pairs():
            reducer.update(front)
        reducer.finalize()
    return direct_match(
        stitcher.layer, ((reducer(front), end) for front, end, _ in pairs()), rcond=rcond, solver=solver
    )


@torch.no_grad()
def fit_image_terms(
    stitcher: Stitcher, pairs: PairSource, *, accumulate: bool = False
) -> tuple[LeastSquaresAccumulator | None, np.ndarray, np.ndarray]:
    """Each fit image's ``Σ‖x Wᵀ + b − y‖²`` and ``Σ‖y‖²`` over its rows, for the installed map ``W, b``
    held fixed (x the rows of the source the stitched network sees, the stitcher's own low-rank
    reduction applied, and y the end activation's rows): their sums' ratio is the in-sample fit residual,
    and a resample's weighted sums are its residual with the same map. With ``accumulate``, also the
    least-squares statistics of the same rows (``.residual(*stitcher.layer.affine())`` is then the
    residual of whatever map is installed), from the same pass."""
    layer = stitcher.layer
    weight, bias = (t.double() for t in layer.affine())
    acc = LeastSquaresAccumulator(layer.in_features, layer.out_features) if accumulate else None
    nums: list[Tensor] = []
    dens: list[Tensor] = []
    for front, end, _ in pairs():
        x_rows, y_rows = paired_rows(layer.pre_transform(stitcher.reduce(front)), layer.transform_target(end))
        if acc is not None:
            acc.update(x_rows, y_rows)
        images = int(front.shape[0])  # rows are image-major (to_rows): each image's rows are consecutive
        x, y = x_rows.double(), y_rows.double()
        err = ((x @ weight.to(x.device).T + bias.to(x.device) - y) ** 2).sum(dim=1)
        nums.append(err.reshape(images, -1).sum(dim=1).cpu())
        dens.append((y * y).sum(dim=1).reshape(images, -1).sum(dim=1).cpu())
    return acc, torch.cat(nums).numpy(), torch.cat(dens).numpy()


def _device_of(stitcher: Stitcher) -> torch.device:
    return stitcher.layer.transform.weight.device


# --- task loss matching and evaluation: a single pair is a grid of one ---------------------------
def _grid_of_one(stitcher: Stitcher, *, donors: bool = False) -> GridPass:
    return GridPass([GridPair(stitcher.front_layer, stitcher.end_layer, stitcher)], 1, donors=donors)


def task_loss_match(
    stitcher: Stitcher,
    train_loader: Iterable,
    loop: LoopSettings,
    *,
    optim: OptimConfig | None = None,
    l1: float = 0.0,
    val_batches: Iterable | None = None,
) -> list[EpochLog]:
    """Train only the stitching layer on the task loss (defaults: Adam, lr 1e-3, wd 1e-5 as L2, like
    the original): :func:`~.grouped.grouped_task_loss_match` of a grid of one. ``val_batches`` (image
    batches) are evaluated after every epoch."""
    grid = _grid_of_one(stitcher)

    def validate(epoch: int) -> list[dict[str, float]]:
        ev = grouped_evaluate(grid, val_batches, loop.device, EvalOptions(amp=loop.amp)).pairs[0]
        return [ev.validation_row(stitcher, l1)]

    check = validate if val_batches is not None else None
    return grouped_task_loss_match(grid, train_loader, loop, optim=optim, l1=l1, validate=check)[0]


@torch.no_grad()
def evaluate_stitcher(
    stitcher: Stitcher,
    batches: Iterable,
    device: torch.device | str,
    *,
    donors: bool = False,
    keep_samples: bool = False,
) -> StitchEvaluation:
    """Accuracy and loss of the stitched network on image ``batches`` and the residual of the installed
    map against the end layer's own activation, in one pass; with ``donors`` also the front and end
    models' accuracies. With ``keep_samples`` the result's ``per_image`` keeps each test image's
    statistics. :func:`~.grid_evaluation.grouped_evaluate` of a grid of one."""
    grid = _grid_of_one(stitcher, donors=donors)
    options = EvalOptions(residuals=True, donors=donors, keep_samples=keep_samples)
    return grouped_evaluate(grid, batches, device, options).of_pair(0)


def sparsity(stitcher: Stitcher, thresholds=(0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)) -> dict[str, dict[str, float]]:
    """Fraction of entries with ``|value| ≤ t`` for each threshold, for the transform's weight, its bias
    and both together (the original counted the weight twice and never the bias, spec 6.1)."""
    w = stitcher.layer.transform.weight.detach().abs().flatten().double().cpu()
    b = stitcher.layer.transform.bias.detach().abs().flatten().double().cpu()
    both = torch.cat([w, b])
    out: dict[str, dict[str, float]] = {}
    for name, values in (("weight", w), ("bias", b), ("all", both)):
        out[name] = {
            _threshold_key(t): float((values <= t).double().mean()) if values.numel() else math.nan for t in thresholds
        }
    return out


def _threshold_key(t: float) -> str:
    return "0" if t == 0 else f"{t:.0e}".replace("e-0", "e-")
