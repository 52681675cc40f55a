"""Fitting and evaluating a :class:`~stitchkit.stitching.stitcher.Stitcher`: direct matching (DM), task
loss matching (TLM) and the one evaluation pass.

All three consume *pair batches* ``(front_activation, end_activation, labels)`` from a re-iterable
source, so the same code serves a single stitch (activations computed on the fly from images,
:func:`image_pairs`) and a layer grid (activations extracted once and reused by every pair,
:func:`cached_pairs`):

* :func:`fit_direct_match` — the least-squares affine map from the stitching layer's transform input
  (``pre_transform`` of the front activation, e.g. the resized map for rc2c_pre) to the end layer's
  output, streamed in float64 (:func:`~stitchkit.stitching.direct_match.direct_match`), so memory does
  not grow with the number of fit images.
* :func:`task_loss_match` — trains only the stitching layer on cross-entropy (+ an optional L1 penalty
  on the transform's weight and bias, the original's ``-l1``) with the one training loop
  (:func:`stitchkit.training.fit`).
* :func:`evaluate_stitcher` — accuracy, loss and the residual ‖T(f(x)) − g(x)‖²/‖g(x)‖² of the installed
  map (pooled, and the original's mean of per-batch ratios), optionally the donors' own accuracies, in
  one pass under ``no_grad``.

Low-rank sources. ``--front-stitch-rank`` (the stitcher's :class:`~.stitcher.SourceReducer`) and
``--front-pinv-rank`` (the ``rank`` of :func:`fit_direct_match`) both truncate the **front activation**,
before the stitching layer's resizing. The original truncated the *resized* transform input for the pinv
fit but the un-resized front activation for stitching, two different definitions of "source rank"
(spec 6.1); stitchkit uses one. With a fixed basis the two orders agree anyway (a channel projection
commutes with a spatial resize that preserves constants).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..activations.extract import Activations
from ..stitch_methods import DEFAULT_DM_SOLVER
from ..training.loop import EpochLog, StepFn, fit, move_batch, topk_hits
from ..training.optim import OptimConfig, build_optimizer, build_scheduler
from .direct_match import DirectMatchResult, LeastSquaresAccumulator, ResidualMeter, _paired_rows, accumulate_pairs, direct_match
from .stitcher import SourceReducer, Stitcher, _cut

PairBatch = tuple[Tensor, Tensor, Tensor]
#: A re-iterable source of pair batches: calling it starts a fresh pass.
PairSource = Callable[[], Iterator[PairBatch]]


# --- sources of pair batches ----------------------------------------------------------------------
def image_pairs(stitcher: Stitcher, loader: Iterable, device: torch.device | str, *, need_end: bool = True) -> PairSource:
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


def cached_pairs(front: Activations, front_layer: str, end: Activations, end_layer: str, batch_size: int, device: torch.device | str) -> PairSource:
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
    return direct_match(stitcher.layer, ((reducer(front), end) for front, end, _ in pairs()), rcond=rcond, solver=solver)


@torch.no_grad()
def fit_image_terms(stitcher: Stitcher, pairs: PairSource, *, accumulate: bool = False
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
        x_rows, y_rows = _paired_rows(layer.pre_transform(stitcher.reduce(front)), layer.transform_target(end))
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


# --- task loss matching ----------------------------------------------------------------------------
def l1_penalty(stitcher: Stitcher) -> Tensor:
    """‖W‖₁ + ‖b‖₁ of the stitching layer's transform (the original's ``-l1`` term)."""
    t = stitcher.layer.transform
    return t.weight.abs().sum() + t.bias.abs().sum()


def stitch_step(l1: float = 0.0, *, from_activations: bool = False) -> StepFn:
    """A training-loop step: cross-entropy (+ ``l1`` · :func:`l1_penalty`) of the stitched network on
    ``(images, labels)`` batches, or on ``(front activations, labels)`` with ``from_activations``."""

    def step(model: Stitcher, batch, device: torch.device):
        inputs, labels = move_batch(batch[0], device), move_batch(batch[1], device)
        logits = model.from_front(inputs) if from_activations else model(inputs)
        loss = F.cross_entropy(logits, labels)
        if l1:
            loss = loss + l1 * l1_penalty(model)
        return loss, labels.shape[0], topk_hits(logits.detach(), labels, (1,))

    return step


class FrontActivationBatches:
    """``(front activation, labels)`` batches of a pair source, re-iterable (a validation 'loader' for
    :func:`task_loss_match` that skips the front network)."""

    def __init__(self, pairs: PairSource):
        self.pairs = pairs

    def __iter__(self):
        for front, _, labels in self.pairs():
            yield front, labels


def task_loss_match(
    stitcher: Stitcher,
    train_loader: Iterable,
    *,
    epochs: int,
    device: torch.device | str,
    optim: OptimConfig | None = None,
    l1: float = 0.0,
    grad_clip: float | None = None,
    seed: int | None = None,
    val_data: Iterable | None = None,
    val_from_activations: bool = False,
    progress: bool = True,
    verbose: bool = True,
    on_epoch_end: Callable[[EpochLog], None] | None = None,
    desc: str = "stitch",
) -> list[EpochLog]:
    """Train only the stitching layer on the task loss (defaults: Adam, lr 1e-3, wd 1e-5 as L2, like
    the original). ``val_data`` is evaluated after every epoch: image batches, or front-activation
    batches (:class:`FrontActivationBatches`) with ``val_from_activations``."""
    device = torch.device(device)
    optim = optim or OptimConfig()
    params = stitcher.trainable_parameters()
    optimizer = build_optimizer(params, optim)
    scheduler = build_scheduler(optimizer, optim, epochs, train_loader)
    return fit(
        stitcher, train_loader, optimizer=optimizer, epochs=epochs, device=device, val_loader=val_data, scheduler=scheduler,
        step_fn=stitch_step(l1), val_step_fn=stitch_step(l1, from_activations=val_from_activations), grad_clip=grad_clip,
        seed=seed, on_epoch_end=on_epoch_end, progress=progress, verbose=verbose, desc=desc, parameters=params,
    )


# --- evaluation ------------------------------------------------------------------------------------
@dataclass
class StitchEvaluation:
    """What one evaluation pass measures.

    ``residual`` pools the whole set: Σ‖T(f(x)) − g(x)‖² / Σ‖g(x)‖² (uncentred target norm);
    ``residual_batch_mean`` is the original's mean of per-batch ratios (depends on the batch size).
    ``front_accuracy``/``end_accuracy`` are the donors' own accuracies (None when not measured, or for a
    front model whose class count differs from the labels').
    """

    accuracy: float
    loss: float
    residual: float
    residual_batch_mean: float
    n: int
    front_accuracy: float | None = None
    end_accuracy: float | None = None
    #: with ``keep_samples``: per test image ``hits``, ``residual_num``, ``residual_den`` and, where the
    #: donors were measured, ``end_hits`` / ``front_hits`` (:mod:`.per_sample`); not in :meth:`to_dict`
    per_image: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "per_image"}


@torch.no_grad()
def evaluate_stitcher(stitcher: Stitcher, pairs: PairSource, *, donors: bool = False, keep_samples: bool = False) -> StitchEvaluation:
    """Accuracy and loss of the stitched network and the residual of the installed map against the end
    layer's own activation, in one pass; with ``donors`` also the front and end models' accuracies
    (from the same activations: front suffix of the front activation, end suffix of the end one).
    With ``keep_samples`` the result's ``per_image`` keeps each test image's statistics."""
    was_training = stitcher.training
    stitcher.eval()
    front_suffix = _cut(stitcher.front_model, "suffix", stitcher.front_layer) if donors else None
    meter = ResidualMeter()
    n = hits = 0
    loss_sum = 0.0
    donor_hits = {"front": 0, "end": 0}
    images: dict[str, list[Tensor]] = {"hits": [], "front_hits": [], "end_hits": []}
    front_ok = True
    try:
        for front, end, labels in pairs():
            stitched = stitcher.stitch(front)
            logits = stitcher.end(stitched)
            meter.update(stitched, end)
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            right = logits.argmax(-1) == labels
            hits += int(right.sum())
            images["hits"].append(right)
            n += labels.shape[0]
            if donors:
                end_right = stitcher.end(end).argmax(-1) == labels
                donor_hits["end"] += int(end_right.sum())
                images["end_hits"].append(end_right)
                front_logits = front_suffix(front)
                if front_logits.dim() != 2 or front_logits.shape[-1] <= int(labels.max()):
                    front_ok = False
                else:
                    front_right = front_logits.argmax(-1) == labels
                    donor_hits["front"] += int(front_right.sum())
                    images["front_hits"].append(front_right)
    finally:
        stitcher.train(was_training)
    if n == 0:
        raise ValueError("evaluation got no samples")
    per_image = None
    if keep_samples:
        num, den = meter.per_sample()
        per_image = {"residual_num": num, "residual_den": den}
        per_image.update({key: torch.cat(batches).to(torch.uint8).cpu().numpy() for key, batches in images.items()
                          if batches and (key != "front_hits" or front_ok)})
    return StitchEvaluation(
        accuracy=hits / n,
        loss=loss_sum / n,
        residual=meter.pooled,
        residual_batch_mean=meter.batch_mean,
        n=n,
        front_accuracy=(donor_hits["front"] / n if front_ok else None) if donors else None,
        end_accuracy=donor_hits["end"] / n if donors else None,
        per_image=per_image,
    )


def sparsity(stitcher: Stitcher, thresholds=(0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)) -> dict[str, dict[str, float]]:
    """Fraction of entries with ``|value| ≤ t`` for each threshold, for the transform's weight, its bias
    and both together (the original counted the weight twice and never the bias, spec 6.1)."""
    w = stitcher.layer.transform.weight.detach().abs().flatten().double().cpu()
    b = stitcher.layer.transform.bias.detach().abs().flatten().double().cpu()
    both = torch.cat([w, b])
    out: dict[str, dict[str, float]] = {}
    for name, values in (("weight", w), ("bias", b), ("all", both)):
        out[name] = {_threshold_key(t): float((values <= t).double().mean()) if values.numel() else math.nan for t in thresholds}
    return out


def _threshold_key(t: float) -> str:
    return "0" if t == 0 else f"{t:.0e}".replace("e-0", "e-")
