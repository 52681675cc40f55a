"""What every OOD detector shares (pytorch-ood style): :class:`Detector` is fitted on in-distribution
activations of one layer and then scores new activations of that layer. ``predict`` returns **outlier
scores** (higher = more OOD), one per sample; :mod:`stitchkit.ood.metrics` turns them into AUROC/AUPR/FPR95
under a stated convention.

A detector is one module in this package with its class declared there
(``@declare("detector", name, trains=..., help=..., options=...)``, see ``CONTRIBUTING.md``); its name in
result records is the declared one.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ...declarations import declaration_of

#: the pooling option every training-free detector offers (``--pool``)
POOL = {
    "flag": "--pool",
    "type": "str",
    "default": "avg",
    "choices": ("avg", "cls", "flatten"),
    "help": "pooling of activations for the training-free detectors",
}


def fit_batches(data: Any, labels: Any = None) -> Iterable[tuple[Tensor, Tensor | None]]:
    """A tensor (with optional labels) or an iterable of ``(x, y)`` / ``x`` batches."""
    if isinstance(data, Tensor) or hasattr(data, "shape"):
        x = torch.as_tensor(data)
        y = None if labels is None else torch.as_tensor(labels)
        step = 1024
        for start in range(0, x.shape[0], step):
            yield x[start : start + step], (None if y is None else y[start : start + step])
        return
    for batch in data:
        if isinstance(batch, (list, tuple)):
            yield batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            yield batch, None


class Detector(abc.ABC):
    """Base class: ``fit`` on ID activations of one layer, ``predict`` outlier scores (higher = OOD)."""

    #: what ``predict`` returns, for result records
    score_name: str = ""
    #: whether ``fit`` needs class labels
    needs_labels: bool = False

    @property
    def name(self) -> str:
        """The declared name (``@declare("detector", name, ...)`` at the class)."""
        return declaration_of("detector", type(self)).name

    def fit(self, data: Any, labels: Any = None) -> Detector:
        """Fit on ID activations: a tensor ``(N, …)`` with ``labels``, or an iterable of ``(x, y)``
        batches. Returns ``self``."""
        return self

    @abc.abstractmethod
    def predict(self, x: Tensor) -> Tensor:
        """Outlier scores ``(B,)`` for a batch of activations; higher = more OOD."""

    @torch.no_grad()
    def predict_batches(self, batches: Iterable[Any]) -> Tensor:
        """Scores of every batch (``x`` or ``(x, …)``), concatenated on the CPU."""
        out = [self.predict(b[0] if isinstance(b, (list, tuple)) else b).detach().cpu() for b in batches]
        return torch.cat(out) if out else torch.zeros(0)

    def describe(self) -> dict[str, Any]:
        """The detector's settings, for result records."""
        return {"detector": self.name, "score": self.score_name}
