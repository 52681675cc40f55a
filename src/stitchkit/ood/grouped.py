"""The OOD test of a whole grid of stitches in one grouped pass (:func:`grouped_stitch_scores`).

Per test batch the front network runs once for all front layers of the grid; for each end layer, the
stitched activations of its stitches are concatenated, the end suffix runs once on them (accuracy)
and each of that layer's detectors scores them once (:class:`~stitchkit.stitching.grouped.GridPass`);
each stitched sample's activation norm is taken in the same pass, on the same concatenated tensor.
This gives, stitch by stitch, what :func:`~stitchkit.ood.evaluate.evaluate_stitched` computes from
one pass per stitch (tested equal), without running the front network or the detectors once per
stitch and without keeping the front activations of the test set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from ..stitching.grouped import GridPass
from ..utils.progress import progress_bar
from .detectors import Detector
from .stitch_record import activation_norms


@dataclass
class StitchScores:
    """One stitch's share of a grouped OOD pass: top-1 hits, samples, each detector's scores and each
    sample's activation norm (:func:`~.stitch_record.activation_norms`)."""

    hits: int = 0
    n: int = 0
    scores: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    seconds: float = 0.0
    norms: list[torch.Tensor] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.hits / self.n if self.n else float("nan")

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: torch.cat(parts).numpy() for name, parts in self.scores.items()}

    def norm_array(self) -> np.ndarray:
        return torch.cat(self.norms).cpu().numpy()


@torch.no_grad()
def grouped_stitch_scores(grid: GridPass, batches: Iterable[Any], detectors: Mapping[str, Mapping[str, Detector]],
                          device: torch.device | str, *, progress: bool = False) -> list[StitchScores]:
    """Accuracy, every detector's outlier scores and the activation norms of the stitched activations of each pair of
    ``grid`` (in its order), from one grouped pass over ``(images, labels)`` ``batches``.
    ``detectors[end_layer]`` maps detector names to the detectors of that end layer."""
    device = torch.device(device)
    started = time.perf_counter()
    out = [StitchScores(scores={name: [] for name in detectors[p.end_layer]}) for p in grid.pairs]
    hits = [torch.zeros((), dtype=torch.long, device=device) for _ in grid.pairs]
    for inputs, labels in progress_bar(batches, "stitched activations", progress):
        x = inputs.to(device, non_blocking=True)
        y = torch.as_tensor(labels).to(device, non_blocking=True)
        b = y.shape[0]
        fronts = grid.fronts(x)
        for group in grid.groups:
            stitched, logits = grid.group_forward(group, fronts)
            k = len(group)
            group_hits = (logits.argmax(-1) == y.repeat(k)).view(k, b).sum(1)
            together = stitched[0] if k == 1 else torch.cat(stitched)
            norms = activation_norms(together).view(k, b)  # kept on the device until the end: no sync per batch
            for name, detector in detectors[group[0].end_layer].items():
                scores = detector.predict(together).detach().float().cpu().view(k, b)
                for i, pair in enumerate(group):
                    out[grid.index[id(pair)]].scores[name].append(scores[i])
            for i, pair in enumerate(group):
                index = grid.index[id(pair)]
                hits[index] = hits[index] + group_hits[i]
                out[index].n += b
                out[index].norms.append(norms[i])
    seconds = (time.perf_counter() - started) / max(len(grid.pairs), 1)
    for result, count in zip(out, hits):
        result.hits, result.seconds = int(count), seconds
    return out


__all__ = ["StitchScores", "grouped_stitch_scores"]
