"""Scores computed from a classifier's logits: energy (the detector score) and MSP (for reference).

Both are returned as *outlier scores*: higher means "more out-of-distribution", the orientation every
detector in :mod:`stitchkit.ood` uses (see :mod:`stitchkit.ood.metrics` for how a metric turns them
into a positive class).

* Energy (Liu, Wang, Owens & Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020, eq. 1):
  ``E(x; f) = −T · logsumexp_k(f_k(x) / T)``, T = 1 by default. Low energy = in-distribution; all-zero
  logits with K classes give ``−T·log K``. The original's evaluation scores ID samples by ``−E``.
* Maximum softmax probability (Hendrycks & Gimpel, ICLR 2017): ``max_k softmax(f(x))_k``; its outlier
  score is ``−MSP``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import StitchkitError, unknown_name


def energy_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Energy ``E = −T·logsumexp(logits / T)`` over the last dimension (Liu et al. 2020, eq. 1).

    Returns one value per sample; higher = more OOD.
    """
    if temperature <= 0:
        raise StitchkitError(f"the energy temperature must be positive, got {temperature}")
    return -temperature * torch.logsumexp(logits / temperature, dim=-1)


def msp_score(logits: Tensor) -> Tensor:
    """Negative maximum softmax probability (Hendrycks & Gimpel 2017); higher = more OOD."""
    return -torch.softmax(logits, dim=-1).amax(dim=-1)


SCORES = {
    "energy": "E = −T·logsumexp(f/T) (Liu et al. 2020); the detector score, higher = more OOD",
    "msp": "−max softmax probability (Hendrycks & Gimpel 2017), for reference; higher = more OOD",
}


def logit_score(name: str, logits: Tensor, temperature: float = 1.0) -> Tensor:
    """The outlier score ``name`` (a key of :data:`SCORES`) of a batch of logits."""
    if name == "energy":
        return energy_score(logits, temperature)
    if name == "msp":
        return msp_score(logits)
    raise unknown_name("logit score", name, SCORES)
