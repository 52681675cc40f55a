"""The one pooling of activations into per-sample feature vectors (probes, OOD detectors and the
similarity policies' ``pool`` / ``cls`` / ``flatten`` all pool here)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import StitchkitError, unknown_name

POOLINGS = {
    "avg": "mean over spatial positions (C,H,W) or tokens (T,D)",
    "cls": "token 0 of a (T,D) sequence (the CLS position); conv maps are averaged",
    "flatten": "every value as a feature",
}


def pool_features(x: Tensor, pool: str = "avg") -> Tensor:
    """``(B, …)`` activations → ``(B, F)`` features by ``pool`` (see :data:`POOLINGS`); ``(B, D)``
    vectors are kept as they are."""
    if pool not in POOLINGS:
        raise unknown_name("pooling", pool, POOLINGS)
    x = torch.as_tensor(x)
    if x.dim() < 2:
        raise StitchkitError(f"activations need a batch dimension, got shape {tuple(x.shape)}")
    if pool == "flatten" or x.dim() == 2:
        return x.reshape(x.shape[0], -1)
    if x.dim() == 4:
        return x.mean(dim=(2, 3))
    if x.dim() == 3:
        return x[:, 0] if pool == "cls" else x.mean(dim=1)
    return x.reshape(x.shape[0], x.shape[1], -1).mean(dim=2)
