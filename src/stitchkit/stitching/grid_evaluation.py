"""Grouped evaluation of a layer grid (:func:`grouped_evaluate`): one front pass and (for the residual)
one end-prefix pass per test batch for all layers, one suffix pass per group of pairs
(:class:`~.grouped.GridPass`); with ``donors`` the two passes run to the logits and also give the
networks' own accuracies. Nothing is cached: the test set streams, so memory does not grow with the
grid or the test set. Activations of the evaluated samples can be read from or written to the
activation cache (:class:`SharedActivations`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..activations.extract import Activations, ActivationWriter
from ..errors import StitchkitError
from ..models.layers import LOGITS
from ..training.loop import autocast
from ..utils.progress import progress_bar
from .direct_match import ResidualMeter
from .grouped import GridPass
from .stitcher import Stitcher, l1_penalty


@dataclass
class StitchEvaluation:
    """What one evaluation pass measures for one pair.

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


@dataclass(frozen=True)
class EvalOptions:
    """What a grouped evaluation pass measures besides accuracy and loss, and how it runs."""

    residuals: bool = False  #: each pair's residual against the end layer's own activation
    donors: bool = False  #: the two networks' own accuracies
    amp: bool = False
    keep_samples: bool = False  #: each test image's statistics (:mod:`.per_sample`)
    progress: bool = False
    desc: str = "evaluate grid"


@dataclass
class SharedActivations:
    """One network's activations of the evaluated samples, in their order: read from a cache
    (``cached``), or written to it during the pass (``sink``, recording ``layers``)."""

    cached: Activations | None = None
    sink: ActivationWriter | None = None
    layers: list[str] = field(default_factory=list)


def _network_activations(
    grid: GridPass,
    which: str,
    needed: Sequence[str],
    shared: SharedActivations | None,
    x: Tensor,
    y: Tensor,
    start: int,
    with_logits: bool,
) -> dict[str, Tensor]:
    if shared is not None and shared.cached is not None:
        b = y.shape[0]
        out = {layer: shared.cached[layer][start : start + b].to(y.device, non_blocking=True) for layer in needed}
        if with_logits:  # the rest of the network after a cached activation is its forward's second half
            out[LOGITS] = grid.rest(which, needed[0])(out[needed[0]])
        return out
    writing = shared is not None and shared.sink is not None
    out = grid.extract(which, x, shared.layers if writing else needed, with_logits=with_logits)
    if writing:
        shared.sink.write({layer: out[layer] for layer in shared.layers}, y)
    return out


@dataclass
class PairEvaluation:
    """One pair's share of a grouped evaluation pass (sums; see :meth:`stats`)."""

    n: int = 0
    hits: Tensor | int = 0
    ce_sum: Tensor | float = 0.0
    residual: ResidualMeter | None = None
    #: with ``keep_samples``: each test image's hit (uint8, in the pass's order; batches until the pass ends)
    hit_images: np.ndarray | list[Tensor] | None = None

    def accuracy(self) -> float:
        return float(self.hits) / self.n if self.n else math.nan

    def loss(self) -> float:
        return float(self.ce_sum) / self.n if self.n else math.nan

    def validation_row(self, stitcher: Stitcher, l1: float = 0.0) -> dict[str, float]:
        """This pair's row of an epoch's validation: the loss TLM minimises (cross-entropy, plus the L1
        penalty of ``stitcher``'s map when ``l1``), the accuracy and the image count."""
        penalty = l1 * float(l1_penalty(stitcher).detach()) if l1 else 0.0
        return {"loss": self.loss() + penalty, "acc": self.accuracy(), "n": self.n}


@dataclass
class GridEvaluation:
    """A grouped evaluation: per pair (in the grid's order) and, with ``donors``, the networks' own hits."""

    pairs: list[PairEvaluation]
    n: int
    front_hits: int | None = None
    end_hits: int | None = None
    front_ok: bool = True
    seconds: float = 0.0
    #: with ``keep_samples`` and ``donors``: each network's hit on each test image (front: None when not measured)
    front_hit_images: np.ndarray | None = None
    end_hit_images: np.ndarray | None = None

    @property
    def front_accuracy(self) -> float | None:
        return self.front_hits / self.n if self.front_hits is not None and self.front_ok and self.n else None

    @property
    def end_accuracy(self) -> float | None:
        return self.end_hits / self.n if self.end_hits is not None and self.n else None

    def of_pair(self, k: int) -> StitchEvaluation:
        """The k-th pair's evaluation (the grid's order), with the donors' accuracies and, where kept,
        each test image's statistics."""
        res, meter = self.pairs[k], self.pairs[k].residual
        per_image = None
        if res.hit_images is not None and meter is not None:
            num, den = meter.per_sample()
            per_image = {"hits": res.hit_images, "residual_num": num, "residual_den": den}
            donors = (("front_hits", self.front_hit_images), ("end_hits", self.end_hit_images))
            per_image.update({key: images for key, images in donors if images is not None})
        return StitchEvaluation(
            accuracy=res.accuracy(),
            loss=res.loss(),
            residual=meter.pooled if meter is not None else math.nan,
            residual_batch_mean=meter.batch_mean if meter is not None else math.nan,
            n=res.n,
            front_accuracy=self.front_accuracy,
            end_accuracy=self.end_accuracy,
            per_image=per_image,
        )


@dataclass
class _DonorHits:
    """The two networks' own hits during a pass (device tensors until it ends: no sync per batch) and,
    with ``keep_samples``, each batch's per-image hits; ``front_ok`` turns False for good once a batch's
    front logits cannot be compared with its labels."""

    front: Tensor
    end: Tensor
    front_ok: bool = True
    front_images: list[Tensor] = field(default_factory=list)
    end_images: list[Tensor] = field(default_factory=list)

    def record(self, front_logits: Tensor, end_logits: Tensor, y: Tensor, keep_samples: bool) -> None:
        end_right = end_logits.argmax(-1) == y
        self.end = self.end + end_right.sum()
        if keep_samples:
            self.end_images.append(end_right.to(torch.uint8))
        if front_logits.dim() != 2 or front_logits.shape[-1] <= int(y.max()):
            self.front_ok = False
        else:
            front_right = front_logits.argmax(-1) == y
            self.front = self.front + front_right.sum()
            if keep_samples:
                self.front_images.append(front_right.to(torch.uint8))


def _record_group(
    grid: GridPass,
    group: Sequence,
    fronts: dict[str, Tensor],
    ends: dict[str, Tensor] | None,
    y: Tensor,
    results: list[PairEvaluation],
    residuals: bool,
    keep_samples: bool,
) -> None:
    """One suffix pass of a group of pairs over a batch, added to each pair's sums (and residual)."""
    b = y.shape[0]
    stitched, logits = grid.group_forward(group, fronts)
    targets = y.repeat(len(group))  # the labels once per pair of the group
    ce = F.cross_entropy(logits.float(), targets, reduction="none").view(len(group), b).sum(1)
    right = (logits.argmax(-1) == targets).view(len(group), b)
    hits = right.sum(1)
    for k, pair in enumerate(group):
        res = results[grid.index[id(pair)]]
        res.n += b
        res.hits = res.hits + hits[k]
        res.ce_sum = res.ce_sum + ce[k].double()
        if keep_samples:
            res.hit_images.append(right[k].to(torch.uint8))
        if residuals:
            res.residual.record(stitched[k], ends[pair.end_layer])


@torch.no_grad()
def grouped_evaluate(
    grid: GridPass,
    batches: Iterable,
    device: torch.device | str,
    options: EvalOptions = EvalOptions(),
    *,
    fronts_from: SharedActivations | None = None,
    ends_from: SharedActivations | None = None,
) -> GridEvaluation:
    """Accuracy, cross-entropy and (with ``options.residuals``) the residual of every pair's installed map
    against the end layer's own activation, plus (with ``options.donors``) the two networks' accuracies, from
    one grouped pass over ``batches`` (see the module docstring). A single pair is a grid of one
    (:func:`~.matching.evaluate_stitcher`).

    ``fronts_from``/``ends_from`` read the two networks' activations of the same samples from a cache
    (that network then does not run) or record them into it (:class:`SharedActivations`). With
    ``keep_samples`` every pair also keeps each test image's hit (``hit_images``) and its residual's
    per-image sums (``residual.per_sample()``), and the donors theirs (:mod:`.per_sample`)."""
    device = torch.device(device)
    residuals, donors, keep_samples = options.residuals, options.donors, options.keep_samples
    started = time.perf_counter()
    results = [
        PairEvaluation(residual=ResidualMeter() if residuals else None, hit_images=[] if keep_samples else None)
        for _ in grid.pairs
    ]
    modes = [(p.stitcher, p.stitcher.training) for p in grid.pairs]
    for stitcher, _ in modes:
        stitcher.eval()
    n = 0
    zero = torch.zeros((), dtype=torch.long, device=device)
    donor_hits = _DonorHits(zero, zero)
    try:
        for inputs, labels in progress_bar(batches, options.desc, options.progress):
            x = inputs.to(device, non_blocking=True)
            y = torch.as_tensor(labels).to(device, non_blocking=True)
            with autocast(device, options.amp):
                fronts = _network_activations(grid, "front", grid.front_layers, fronts_from, x, y, n, donors)
                ends = (
                    _network_activations(grid, "end", grid.end_layers, ends_from, x, y, n, donors)
                    if (residuals or donors)
                    else None
                )
                if donors:
                    donor_hits.record(fronts[LOGITS], ends[LOGITS], y, keep_samples)
                for group in grid.groups:
                    _record_group(grid, group, fronts, ends, y, results, residuals, keep_samples)
            n += y.shape[0]
    except BaseException:
        for shared in (fronts_from, ends_from):
            if shared is not None and shared.sink is not None:
                shared.sink.abort()
        raise
    finally:
        for stitcher, mode in modes:
            stitcher.train(mode)
    if n == 0:
        raise StitchkitError("evaluation got no samples")
    for res in results:
        res.hits, res.ce_sum = int(res.hits), float(res.ce_sum)
        if keep_samples:
            res.hit_images = _joined(res.hit_images)
    front_ok = donor_hits.front_ok
    front_images = _joined(donor_hits.front_images) if keep_samples and donors and front_ok else None
    end_images = _joined(donor_hits.end_images) if keep_samples and donors else None
    return GridEvaluation(
        results,
        n,
        int(donor_hits.front) if donors else None,
        int(donor_hits.end) if donors else None,
        front_ok,
        time.perf_counter() - started,
        front_images,
        end_images,
    )


def _joined(batches: list[Tensor]) -> np.ndarray:
    """Per-batch uint8 tensors (on the device until now: no sync per batch) as one host array."""
    return torch.cat(batches).cpu().numpy() if batches else np.zeros(0, dtype=np.uint8)
