"""The energy fine-tuning of a :class:`~.bank.DetectorBank` (its phase C): the batches, half in-distribution
images and half outliers, fresh disjoint samples every epoch, and the step function giving every layer's
detector its outlier-exposure loss (:func:`~.finetune_loss.energy_finetune_loss`) on one such batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..data import MultiEpochDisjointSubsetSampler
from ..data.loading import make_batches
from .finetune_loss import energy_finetune_loss
from .train_config import DetectorTrainConfig
from .train_inputs import TrainingData

if TYPE_CHECKING:  # the bank imports this module
    from .bank import DetectorBank


class PairedBatches:
    """Zip an ID loader and an outlier loader; one item = ((x_in, y_in), (x_out, y_out))."""

    def __init__(self, id_loader, ood_loader):
        self.id_loader, self.ood_loader = id_loader, ood_loader

    def __iter__(self):
        return zip(self.id_loader, self.ood_loader)

    def __len__(self) -> int:
        return min(len(self.id_loader), len(self.ood_loader))


def paired_batches(config: DetectorTrainConfig, data: TrainingData, device: torch.device) -> PairedBatches:
    """Batches of half ``config.batch_size`` fine-tuning ID images and half outliers, each side drawn fresh
    and disjoint every epoch (seeded by ``config.seed``)."""
    half = config.batch_size // 2
    id_sampler = MultiEpochDisjointSubsetSampler(
        data.ft_id, int(data.ft_per_epoch), generator=torch.Generator().manual_seed(config.seed * 7919 + 1)
    )
    ood_sampler = MultiEpochDisjointSubsetSampler(
        data.ft_ood, int(data.ft_per_epoch), generator=torch.Generator().manual_seed(config.seed * 7919 + 2)
    )
    batches = dict(shuffle=False, workers=config.workers, prefetch=config.prefetch, device=device)
    return PairedBatches(
        make_batches(data.ft_id, half, sampler=id_sampler, **batches),
        make_batches(data.ft_ood, half, sampler=ood_sampler, **batches),
    )


class FinetuneStep:
    """The fine-tuning step function: the loss of every layer's detector on one half-ID, half-outlier batch."""

    def __init__(self, bank: DetectorBank, optimizer: torch.optim.Optimizer, milestone: int):
        self.bank, self.optimizer, self.milestone = bank, optimizer, milestone
        self.iteration = 0

    def __call__(self, model: nn.Module, batch: Any, dev: torch.device):
        config, bank = self.bank.config, self.bank
        (x_in, y_in), (x_out, _) = batch
        if config.ft_lr_per_batch and model.training:
            # The original's MultiStepLR([fe//2]) stepped after every batch: batch i (counted over
            # the whole fine-tuning) runs at lr·0.1 once i ≥ fe//2.
            factor = 0.1 if self.iteration >= self.milestone else 1.0
            for group in self.optimizer.param_groups:
                group["lr"] = config.lr * factor
            self.iteration += 1
        x_in, y_in, x_out = (
            x_in.to(dev, non_blocking=True),
            y_in.to(dev, non_blocking=True),
            x_out.to(dev, non_blocking=True),
        )
        n_in = x_in.shape[0]
        acts = bank.activations(torch.cat([x_in, x_out]))
        total, stats = 0.0, {"n_id": float(n_in)}
        n = n_in + x_out.shape[0]
        for layer in bank.layers:
            logits = model[bank.keys[layer]](acts[layer])
            loss, parts = energy_finetune_loss(
                logits[:n_in],
                y_in,
                logits[n_in:],
                score=config.score,
                m_in=config.m_in,
                m_out=config.m_out,
                energy_weight=config.energy_weight,
                oe_weight=config.oe_weight,
            )
            total = total + loss
            stats[f"{layer}|ft_loss"] = float(loss.detach()) * n
            stats[f"{layer}|ce"] = float(parts["ce"]) * n_in
            stats[f"{layer}|reg"] = float(parts["reg"]) * n
            stats[f"{layer}|acc"] = float((logits[:n_in].detach().argmax(-1) == y_in).sum())
            stats[f"{layer}|energy_in"] = float(parts["energy_in"].sum())
            stats[f"{layer}|energy_out"] = float(parts["energy_out"].sum())
        return total, n, stats
