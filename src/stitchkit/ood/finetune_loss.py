"""The loss of energy fine-tuning with outlier exposure (and of the OE score's variant)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..choices import OOD_SCORES
from ..errors import unknown_name


def energy_finetune_loss(
    logits_in: Tensor,
    labels_in: Tensor,
    logits_out: Tensor,
    *,
    score: str = "energy",
    m_in: float = -25.0,
    m_out: float = -7.0,
    energy_weight: float = 0.1,
    oe_weight: float = 0.5,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The fine-tuning loss of one batch; returns ``(loss, {"ce", "reg", "energy_in", "energy_out"})``.

    ``score="energy"`` (Liu et al. 2020, eq. 6 with the squared hinges of their code's description):
    ``CE(f(x_in), y) + w·(mean relu(E(x_in) − m_in)² + mean relu(m_out − E(x_out))²)``,
    ``E = −logsumexp(f)``, w = 0.1. It pushes ID energies below ``m_in`` and outlier energies above
    ``m_out``. ``score="OE"`` (Hendrycks, Mazeika & Dietterich, ICLR 2019):
    ``CE + w·mean_out[−(mean_k f_k − logsumexp f)]``, the cross-entropy to the uniform distribution,
    w = 0.5. The returned energies are per-sample and detached.
    """
    ce = F.cross_entropy(logits_in, labels_in)
    e_in = -torch.logsumexp(logits_in, dim=-1)
    e_out = -torch.logsumexp(logits_out, dim=-1)
    if score == "energy":
        reg = F.relu(e_in - m_in).pow(2).mean() + F.relu(m_out - e_out).pow(2).mean()
        loss = ce + energy_weight * reg
    elif score == "OE":
        reg = -(logits_out.mean(dim=-1) - torch.logsumexp(logits_out, dim=-1)).mean()
        loss = ce + oe_weight * reg
    else:
        raise unknown_name("OOD score", score, OOD_SCORES)
    return loss, {"ce": ce.detach(), "reg": reg.detach(), "energy_in": e_in.detach(), "energy_out": e_out.detach()}
