"""The energy detector: a trained representation classifier (``repr_cls_*``) scored by its energy
``E = −T·logsumexp(f/T)`` (Liu, Wang, Owens & Li, "Energy-based Out-of-distribution Detection", NeurIPS
2020). Training (supervised pre-training + energy fine-tuning with outlier exposure) is
:func:`stitchkit.ood.train.train_detectors`; ``fit`` is a no-op."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...declarations import declare
from ..scores import energy_score
from .base import Detector


@declare(
    "detector",
    "energy",
    order=1,
    trains=True,
    help="a trained representation classifier scored by its energy (Liu et al. 2020; `stitchkit detector train`)",
)
class EnergyDetector(Detector):
    """A trained representation classifier scored by energy (Liu et al. 2020).

    ``model`` maps activations of one layer to class logits (``repr_cls_resnet*`` / ``repr_cls_vit_*``).
    """

    score_name = "energy"

    def __init__(
        self,
        model: nn.Module,
        temperature: float = 1.0,
        device: torch.device | str | None = None,
        meta: dict | None = None,
    ):
        self.model = model
        self.temperature = float(temperature)
        if device is not None:
            self.model.to(device)
        self.model.eval()
        self.meta = dict(meta or {})

    @property
    def device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def to(self, device: torch.device | str) -> EnergyDetector:
        self.model.to(device)
        return self

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        self.model.eval()
        return self.model(x.to(self.device, non_blocking=True))

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return energy_score(self.logits(x).float(), self.temperature)

    def describe(self) -> dict[str, Any]:
        spec = getattr(self.model, "stitchkit_spec", None)
        out = {**super().describe(), "temperature": self.temperature, "model_spec": spec}
        if self.meta.get("id"):
            out["detector_id"] = self.meta["id"]
        return out
