"""The one scoring path of the OOD test of stitches (:func:`grouped_stitch_scores`), and each stitch's
record made from it (:func:`stitch_results`).

A grid of stitches (:class:`~stitchkit.stitching.grouped.GridPass`) is scored in one grouped pass: per test
batch the front network runs once for all front layers of the grid; for each end layer, the stitched
activations of its stitches are concatenated, the end suffix runs once on them (accuracy) and each of that
layer's detectors scores them once; each stitched sample's activation norm is taken in the same pass, on
the same concatenated tensor. A single stitch is a grid of one.

The per-stitch reference is a mode of the same path: :class:`StitchedActivations`, one stitch whose
stitched activations are given batch by batch (by :func:`~stitchkit.ood.evaluate.stitched_batches` or
any other way, with or without labels and logits), is scored by the same loop as a group of one
(:func:`~stitchkit.ood.evaluate.evaluate_stitched`; the grouped pass equals it stitch by stitch, tested).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..models.layers import layered
from ..stitching.grouped import GridPass
from ..utils.progress import progress_bar
from .detectors import Detector
from .metrics import OODConvention, ValueSummary
from .stitch_record import StitchOODResult, activation_norms


@dataclass
class StitchScores:
    """One stitch's share of a scoring pass: top-1 hits among the ``labelled`` samples, samples, each
    detector's scores and each sample's activation norm (:func:`~.stitch_record.activation_norms`)."""

    hits: int = 0
    n: int = 0
    scores: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    seconds: float = 0.0
    norms: list[torch.Tensor] = field(default_factory=list)
    labelled: int = 0

    @property
    def accuracy(self) -> float:
        return self.hits / self.labelled if self.labelled else math.nan

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: torch.cat(parts).numpy() for name, parts in self.scores.items()}

    def norm_array(self) -> np.ndarray:
        return torch.cat(self.norms).cpu().numpy()


class StitchedActivations:
    """The per-stitch reference mode of :func:`grouped_stitch_scores`: one stitch (``front_layer`` →
    ``end_layer`` of ``end_model``) whose stitched activations are given, a grid of one whose one pair is
    itself. Its batches are ``stitched``, ``(stitched, labels)``, ``(stitched, labels, logits)`` or dicts with
    those keys; the accuracy needs labels, and the logits default to the end network's suffix applied to
    the stitched activation."""

    def __init__(self, end_model: nn.Module, end_layer: str, front_layer: str | None = None):
        self.end_model, self.end_layer, self.front_layer = end_model, end_layer, front_layer
        self.pairs = [self]
        self.index = {id(self): 0}
        self.desc = f"stitched {front_layer or ''}->{end_layer}"
        self._suffix: nn.Module | None = None

    def forward(self, batch: Any) -> Iterator[tuple[Sequence[Any], Tensor, Tensor | None, Tensor | None]]:
        act, labels, logits = _unpack(batch)
        if labels is not None:
            if logits is None:
                if self._suffix is None:
                    self._suffix = layered(self.end_model).suffix(self.end_layer)
                logits = self._suffix(act)
            labels = torch.as_tensor(labels).to(logits.device)
        yield self.pairs, act, logits, labels


class _GridSource:
    """A :class:`GridPass` as a source of the scoring loop: per ``(images, labels)`` batch, each group's
    concatenated stitched activations and the logits of its one suffix pass."""

    desc = "stitched activations"

    def __init__(self, grid: GridPass, device: torch.device):
        self.grid, self.device = grid, device
        self.pairs, self.index = grid.pairs, grid.index

    def forward(self, batch: Any) -> Iterator[tuple[Sequence[Any], Tensor, Tensor | None, Tensor | None]]:
        inputs, labels = batch
        x = inputs.to(self.device, non_blocking=True)
        y = torch.as_tensor(labels).to(self.device, non_blocking=True)
        fronts = self.grid.fronts(x)
        for group in self.grid.groups:
            stitched, logits = self.grid.group_forward(group, fronts)
            yield group, stitched[0] if len(group) == 1 else torch.cat(stitched), logits, y.repeat(len(group))


def _unpack(batch: Any) -> tuple[Tensor, Tensor | None, Tensor | None]:
    if isinstance(batch, Tensor):
        return batch, None, None
    if isinstance(batch, Mapping):
        return batch["stitched"], batch.get("labels"), batch.get("logits")
    items = list(batch) + [None, None]
    return items[0], items[1], items[2]


@torch.no_grad()
def grouped_stitch_scores(
    grid: GridPass | StitchedActivations,
    batches: Iterable[Any],
    detectors: Mapping[str, Mapping[str, Detector]],
    device: torch.device | str = "cpu",
    *,
    progress: bool = False,
) -> list[StitchScores]:
    """Accuracy, every detector's outlier scores and the activation norms of the stitched activations of each pair of
    ``grid`` (in its order), from one grouped pass over ``(images, labels)`` ``batches`` on ``device``; or, for
    :class:`StitchedActivations` (the per-stitch reference), of its one stitch from its given batches.
    ``detectors[end_layer]`` maps detector names to the detectors of that end layer."""
    source = grid if isinstance(grid, StitchedActivations) else _GridSource(grid, torch.device(device))
    started = time.perf_counter()
    out = [StitchScores(scores={name: [] for name in detectors[p.end_layer]}) for p in source.pairs]
    hits: list[Any] = [0 for _ in source.pairs]  # tensors on the device once counted: no sync per batch
    for batch in progress_bar(batches, source.desc, progress):
        for group, together, logits, labels in source.forward(batch):
            k = len(group)
            b = together.shape[0] // k
            group_hits = None if labels is None else (logits.argmax(-1) == labels).view(k, b).sum(1)
            norms = activation_norms(together).view(k, b)  # kept on the device until the end
            for name, detector in detectors[group[0].end_layer].items():
                scores = detector.predict(together).detach().float().cpu().view(k, b)
                for i, pair in enumerate(group):
                    out[source.index[id(pair)]].scores[name].append(scores[i])
            for i, pair in enumerate(group):
                index = source.index[id(pair)]
                out[index].n += b
                out[index].norms.append(norms[i])
                if group_hits is not None:
                    hits[index] = hits[index] + group_hits[i]
                    out[index].labelled += b
    seconds = (time.perf_counter() - started) / max(len(source.pairs), 1)
    for result, count in zip(out, hits, strict=True):
        result.hits, result.seconds = int(count), seconds
    return out


def stitch_results(
    pairs: Sequence[Any],
    scored: Sequence[StitchScores],
    detectors: Mapping[str, Mapping[str, Detector]],
    id_scores: Mapping[str, Mapping[str, Any]],
    convention: OODConvention,
    id_norms: Mapping[str, Any] | None = None,
) -> list[StitchOODResult]:
    """Each stitch's record (:class:`~.stitch_record.StitchOODResult`) from its share of the scoring pass: the
    OOD metrics of its scores against the end network's genuine ``id_scores`` (``{end layer: {detector:
    scores}}``) under ``convention``, its norms, and with ``id_norms`` (``{end layer: norms}`` of the same
    genuine activations) the norm ratio."""
    genuine_norms = {
        layer: ValueSummary.of(values, f"genuine activation norms at {layer!r}")
        for layer, values in (id_norms or {}).items()
    }
    results = []
    for pair, out in zip(pairs, scored, strict=True):
        ood, norms = out.arrays(), out.norm_array()
        genuine, end_detectors = id_scores[pair.end_layer], detectors[pair.end_layer]
        metrics = {name: convention.metrics(genuine[name], ood[name], end_detectors[name].name) for name in ood}
        results.append(
            StitchOODResult(
                pair.end_layer,
                out.accuracy,
                out.n,
                metrics,
                ood,
                front_layer=pair.front_layer,
                seconds=out.seconds,
                stitched_norm=ValueSummary.of(norms),
                genuine_norm=genuine_norms.get(pair.end_layer),
                norms=norms,
            )
        )
    return results


__all__ = ["StitchScores", "StitchedActivations", "grouped_stitch_scores", "stitch_results"]
