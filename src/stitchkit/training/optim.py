"""Optimizers and learning-rate schedules, by name (one registry each)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch

from ..choices import SCHEDULERS  # torch-free home of the names (the CLI reads them)
from ..errors import StitchkitError, unknown_name


@dataclass
class OptimConfig:
    """Everything that shapes the optimisation. Defaults are the original's ``exec_train.py``."""

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.0  # the original's SGD had none; the ImageNet preset uses 0.9
    nesterov: bool = False
    scheduler: str = "none"
    milestones: list[int] = field(default_factory=list)  # -rlre: MultiStepLR milestones (epochs)
    gamma: float = 0.1
    step_size: int = 30  # for the `step` scheduler
    warmup_epochs: int = 0

    def validate(self) -> "OptimConfig":
        if self.optimizer not in OPTIMIZERS:
            raise unknown_name("optimizer", self.optimizer, OPTIMIZERS)
        if self.scheduler not in SCHEDULERS:
            raise unknown_name("scheduler", self.scheduler, SCHEDULERS)
        if not self.lr > 0:
            raise StitchkitError(f"learning rate must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise StitchkitError(f"weight decay must be non-negative, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise StitchkitError(f"momentum must be in [0, 1), got {self.momentum}")
        if any(m <= 0 for m in self.milestones):
            raise StitchkitError(f"LR decay epochs (-rlre) must be positive, got {self.milestones}")
        if self.step_size <= 0:
            raise StitchkitError(f"step size must be positive, got {self.step_size}")
        if not 0 < self.gamma <= 1:
            raise StitchkitError(f"LR decay factor must be in (0, 1], got {self.gamma}")
        if self.warmup_epochs < 0:
            raise StitchkitError(f"warm-up epochs must be non-negative, got {self.warmup_epochs}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise StitchkitError("Nesterov momentum needs --optimizer sgd and --momentum > 0")
        return self


def _adam(params, cfg: OptimConfig):
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)  # L2, as the original


def _adamw(params, cfg: OptimConfig):
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _sgd(params, cfg: OptimConfig):
    return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum, nesterov=cfg.nesterov)


OPTIMIZERS = {"adam": _adam, "adamw": _adamw, "sgd": _sgd}


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    cfg.validate()
    params = [p for p in params if p.requires_grad]
    if not params:
        raise StitchkitError("nothing to train: the model has no parameters that require gradients")
    return OPTIMIZERS[cfg.optimizer](params, cfg)


def _epoch_factor(cfg: OptimConfig, epochs: int):
    """LR multiplier as a function of the number of finished epochs (schedules step once per epoch)."""
    kind = cfg.scheduler

    def factor(epoch: int) -> float:
        f = 1.0
        if kind == "multistep" or (kind == "none" and cfg.milestones):
            f = cfg.gamma ** sum(1 for m in cfg.milestones if epoch >= m)
        elif kind == "step":
            f = cfg.gamma ** (epoch // cfg.step_size)
        elif kind == "cosine":
            span = max(1, epochs - cfg.warmup_epochs)
            t = min(max(epoch - cfg.warmup_epochs, 0), span) / span
            f = 0.5 * (1 + math.cos(math.pi * t))
        elif kind == "linear":
            span = max(1, epochs - cfg.warmup_epochs)
            f = 1 - min(max(epoch - cfg.warmup_epochs, 0), span) / span
        if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
            f *= (epoch + 1) / (cfg.warmup_epochs + 1)
        return f

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch schedule (call ``.step()`` once after each epoch), as a LambdaLR so its state is
    plain data and resumes exactly."""
    cfg.validate()
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _epoch_factor(cfg, epochs))
