"""Optimizers and learning-rate schedules, by name (one registry each).

A schedule is a multiplier of the learning rate, a closed-form function of where the run is, built as a
``LambdaLR`` (its state is the count of steps taken: plain data that resumes exactly). It advances once
per epoch (``schedule_unit="epoch"``, the original's) or after every optimizer step (``"step"``, a
:class:`PerStepLR`, over ``T = epochs × batches per epoch`` steps); :func:`schedule_factor` states
the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..choices import SCHEDULE_UNITS, SCHEDULERS  # torch-free home of the names (the CLI reads them)
from ..errors import StitchkitError, unknown_name
from ..utils.numbers import check_finite

#: the schedules that decay over the run's positions (epochs, or steps of a per-step schedule); the
#: others count epochs in both units
RUN_DECAYS = ("cosine", "linear", "onecycle")


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
    #: when the schedule advances: "epoch" (the original's) or "step" (after every optimizer step)
    schedule_unit: str = "epoch"
    #: per-step schedules: the share of the run's optimizer steps spent warming up, in [0, 1)
    warmup_fraction: float = 0.0

    def validate(self) -> OptimConfig:
        check_finite(
            {
                "learning rate": self.lr,
                "weight decay": self.weight_decay,
                "momentum": self.momentum,
                "LR decay factor": self.gamma,
                "warm-up fraction": self.warmup_fraction,
            }
        )
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
        self._validate_unit()
        return self

    def _validate_unit(self) -> None:
        """The per-step options: a warm-up fraction and onecycle only step by step, warm-up epochs only by epoch."""
        if self.schedule_unit not in SCHEDULE_UNITS:
            raise unknown_name("schedule unit", self.schedule_unit, SCHEDULE_UNITS)
        if isinstance(self.warmup_fraction, bool) or not 0 <= self.warmup_fraction < 1:
            raise StitchkitError(
                f"the warm-up fraction is a share of the run's optimizer steps in [0, 1), got {self.warmup_fraction!r}"
            )
        if self.schedule_unit == "epoch":
            if self.warmup_fraction:
                raise StitchkitError(
                    "a warm-up fraction (--warmup-fraction) warms up over optimizer steps: it needs the schedule unit "
                    "step (--schedule-unit step)"
                )
            if self.scheduler == "onecycle":
                raise StitchkitError(
                    "the onecycle schedule changes the LR after every optimizer step: it needs the schedule unit step "
                    "(--schedule-unit step) and a warm-up fraction (--warmup-fraction, e.g. 0.3)"
                )
            return
        if self.warmup_epochs:
            raise StitchkitError(
                "--warmup-epochs warms up a per-epoch schedule; a per-step one (--schedule-unit step) warms up over a "
                "share of its steps: --warmup-fraction"
            )
        if self.scheduler == "onecycle" and not self.warmup_fraction:
            raise StitchkitError(
                "the onecycle schedule rises to the peak LR during its warm-up: give the warm-up's share of the steps "
                "(--warmup-fraction, e.g. 0.3, the one-cycle policy's usual)"
            )

    @property
    def per_step(self) -> bool:
        """Whether the schedule advances after every optimizer step (else after every epoch)."""
        return self.schedule_unit == "step"

    @property
    def changes_within_epochs(self) -> bool:
        """Whether the LR differs between the steps of one epoch: a per-step schedule with a warm-up or a
        cosine, linear or one-cycle decay (the milestone and step decays count epochs either way)."""
        return self.per_step and (self.warmup_fraction > 0 or self.scheduler in RUN_DECAYS)

    def identity(self) -> dict[str, Any]:
        """The fields as a dict (what names a run), the per-step ones only where they change the learning
        rates, so that runs named before they existed, and per-step runs with per-epoch LRs, keep their names."""
        out = asdict(self)
        if not self.changes_within_epochs:
            del out["schedule_unit"], out["warmup_fraction"]
        return out


def _adam(params, cfg: OptimConfig):
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)  # L2, as the original


def _adamw(params, cfg: OptimConfig):
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _sgd(params, cfg: OptimConfig):
    return torch.optim.SGD(
        params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum, nesterov=cfg.nesterov
    )


OPTIMIZERS = {"adam": _adam, "adamw": _adamw, "sgd": _sgd}


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    cfg.validate()
    params = [p for p in params if p.requires_grad]
    if not params:
        raise StitchkitError("nothing to train: the model has no parameters that require gradients")
    return OPTIMIZERS[cfg.optimizer](params, cfg)


#: the one-cycle policy's first learning rate as a share of the peak (``div_factor`` 25 of fastai and PyTorch)
ONECYCLE_START = 1 / 25


def schedule_factor(cfg: OptimConfig, i: int, length: int, warmup: int, epoch: int) -> float:
    """The LR multiplier at position ``i`` (0-based) of a schedule ``length`` positions long whose first
    ``warmup`` positions warm up; positions are epochs, or optimizer steps of a per-step schedule.
    ``epoch`` is the number of finished epochs (``i`` itself per epoch, ``⌊i / steps per epoch⌋`` per step).

    * ``none`` (with milestones) / ``multistep``: ``gamma^(#milestones ≤ epoch)``; ``step``:
      ``gamma^⌊epoch / step_size⌋`` — these count epochs in both units;
    * ``cosine``: ``(1 + cos(π·t)) / 2``, ``linear``: ``1 − t``, with ``t = min(max(i − warmup, 0), S) / S``
      and ``S = max(1, length − warmup)`` (the last position stays above 0);
    * warm-up (any of the above): ``× (i + 1) / (warmup + 1)`` for ``i < warmup``;
    * ``onecycle``: a cosine rise ``a + (1 − a)·(1 − cos(π·i / warmup)) / 2`` from ``a`` = :data:`ONECYCLE_START`
      for ``i < warmup``, then the cosine decay above — both phases annealed by cosine, as in the one-cycle
      policy's common form (fastai, PyTorch's OneCycleLR), which ends at ~0 too.
    """
    kind = cfg.scheduler
    if kind == "onecycle" and i < warmup:
        return ONECYCLE_START + (1 - ONECYCLE_START) * (1 - math.cos(math.pi * i / warmup)) / 2
    f = 1.0
    if kind == "multistep" or (kind == "none" and cfg.milestones):
        f = cfg.gamma ** sum(1 for m in cfg.milestones if epoch >= m)
    elif kind == "step":
        f = cfg.gamma ** (epoch // cfg.step_size)
    elif kind in RUN_DECAYS:
        span = max(1, length - warmup)
        t = min(max(i - warmup, 0), span) / span
        f = 1 - t if kind == "linear" else 0.5 * (1 + math.cos(math.pi * t))
    if warmup and i < warmup:
        f *= (i + 1) / (warmup + 1)
    return f


def warmup_steps(fraction: float, total: int) -> int:
    """The warm-up of a per-step schedule of ``total`` steps: ``round(fraction · total)`` steps (halves up),
    at most ``total − 1`` so that at least one step is at the peak."""
    return max(0, min(math.floor(fraction * total + 0.5), total - 1))


class PerStepLR(torch.optim.lr_scheduler.LambdaLR):
    """A LambdaLR that the training loops step after every optimizer step instead of every epoch (its
    state, the number of steps taken, is that of any LambdaLR)."""


def split_schedule(scheduler: Any) -> tuple[PerStepLR | None, Any]:
    """``(per step, per epoch)``: the schedule to step after every optimizer step and the one to step after
    every epoch (the other one, and both without a schedule, None)."""
    if isinstance(scheduler, PerStepLR):
        return scheduler, None
    return None, scheduler


def steps_per_epoch(batches: Any) -> int:
    """The optimizer steps of one epoch over ``batches`` (their ``len``)."""
    try:
        return len(batches)
    except TypeError:
        raise StitchkitError(
            "a per-step LR schedule (--schedule-unit step) needs the number of batches per epoch, but the training "
            "batches have no len(); give a DataLoader or another sized iterable, or use --schedule-unit epoch"
        ) from None


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int, batches: Any = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of a run of ``epochs`` epochs (:func:`schedule_factor`): a LambdaLR to step after each
    epoch, or with ``cfg.schedule_unit == "step"`` a :class:`PerStepLR` over ``epochs × len(batches)``
    optimizer steps (``batches``: the training batches of one epoch; only per-step schedules read them)."""
    cfg.validate()
    if not cfg.per_step:
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: schedule_factor(cfg, e, epochs, cfg.warmup_epochs, e)
        )
    per_epoch = steps_per_epoch(batches)
    total = epochs * per_epoch
    warmup = warmup_steps(cfg.warmup_fraction, total)
    return PerStepLR(optimizer, lambda s: schedule_factor(cfg, s, total, warmup, s // max(1, per_epoch)))


def describe_schedule(cfg: OptimConfig) -> str:
    """How the schedule steps, as the results' conventions record it."""
    if not cfg.per_step:
        return "stepped per epoch"
    warm = f", warm-up over round({cfg.warmup_fraction:g}·T) of them" if cfg.warmup_fraction else ""
    return f"stepped after every optimizer step (T = epochs × batches per epoch){warm}"
