"""The record of one stitch's OOD test (:class:`StitchOODResult`) and the activation norm it
compares (:func:`activation_norms`, :data:`NORM_DEFINITION`).

An AUROC alone does not say *how* the stitched activations differ from the genuine ones: AUROC =
P(stitched score > genuine score) + ½·P(tie) for outlier scores (higher = more OOD), so AUROC ≈ 1 means
the detector flags the stitched activations, AUROC ≈ ½ that it cannot tell them apart, and AUROC far
below ½ that it rates them as *more typical* than the genuine ones. The record therefore keeps, beside
the metrics, both sides' score distributions (in each detector's
:class:`~.metrics.OODMetricsResult`) and the norms of both sides' activations: where an energy
detector's logits grow with the size of its input, stitched activations of several times the genuine
norm get lower energy ("more typical"), while their Mahalanobis distance grows (k-NN normalises its
features, so it sees only a change of direction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..results.ood_scores import NORM_DEFINITION  # torch-free home of the text (the report reads it)
from .metrics import OODMetricsResult, ValueSummary


def activation_norms(act: Tensor) -> Tensor:
    """Each sample's L2 norm over its whole activation tensor (every dimension but the first), float32."""
    return torch.linalg.vector_norm(act.float(), dim=tuple(range(1, act.dim())))


@dataclass
class StitchOODResult:
    """Accuracy and OOD metrics of one stitch at one end layer, plus its scores.

    Each detector's metrics carry both sides' score distributions; ``stitched_norm`` and
    ``genuine_norm`` summarise the activation norms (:data:`NORM_DEFINITION`) of the stitched and the
    genuine activations, and :attr:`norm_ratio` compares their means; ``norms`` keeps the stitched
    ones image by image (:mod:`.per_sample`).
    """

    end_layer: str
    accuracy: float
    n: int
    metrics: dict[str, OODMetricsResult]
    ood_scores: dict[str, np.ndarray] = field(repr=False)
    front_layer: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    stitched_norm: ValueSummary | None = None
    genuine_norm: ValueSummary | None = None
    #: each stitched sample's activation norm, in the order of the scores (what ``stitched_norm`` summarises)
    norms: np.ndarray | None = field(default=None, repr=False)

    @property
    def norm_ratio(self) -> float:
        """Mean stitched activation norm / mean genuine one (NaN where either is not recorded)."""
        if self.stitched_norm is None or self.genuine_norm is None:
            return math.nan
        if self.genuine_norm.mean == 0:  # all-zero genuine activations: no scale to compare with
            return math.inf if self.stitched_norm.mean > 0 else math.nan
        return self.stitched_norm.mean / self.genuine_norm.mean

    def to_dict(self, scores: bool = False) -> dict[str, Any]:
        norms = {
            key: None if value is None else value.to_dict()
            for key, value in (("stitched_norm", self.stitched_norm), ("genuine_norm", self.genuine_norm))
        }
        out = {
            "front_layer": self.front_layer,
            "end_layer": self.end_layer,
            "accuracy": self.accuracy,
            "n": self.n,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "norm_ratio": self.norm_ratio,
            **norms,
            "seconds": self.seconds,
            **self.extra,
        }
        if scores:
            out["ood_scores"] = {k: v.tolist() for k, v in self.ood_scores.items()}
        return out


__all__ = ["NORM_DEFINITION", "StitchOODResult", "activation_norms"]
