"""The one training loop: base models, stitching layers, probes and OOD detectors all train here.

A *step function* turns one batch into ``(loss, n_samples, {metric: sum})``; the default is
classification with cross-entropy and top-1 counts. Everything else — epochs, per-epoch seeding (so a
resumed run repeats the same batches), mixed precision, gradient clipping, divergence checks, the
LR schedule (stepped after every epoch, or after every optimizer step for a
:class:`~stitchkit.training.optim.PerStepLR`), distributed reduction, progress bars and callbacks —
lives here once. The ``lr`` logged per epoch is that of the epoch's last optimizer step.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch
from torch import nn

from ..errors import StitchkitError
from ..models.outputs import logits_of
from ..utils.progress import progress_bar, tqdm
from .distributed import all_reduce_sum
from .optim import PerStepLR, split_schedule

StepOutput = tuple[torch.Tensor, int, dict[str, float]]
StepFn = Callable[[nn.Module, Any, torch.device], StepOutput]


class TrainingDiverged(StitchkitError):
    """The loss became NaN or infinite."""


def move_batch(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_batch(b, device) for b in batch)
    if isinstance(batch, Mapping):
        return {k: move_batch(v, device) for k, v in batch.items()}
    return batch


def classification_step(
    loss_fn: Callable | None = None, topk: Iterable[int] = (1,), record: list[torch.Tensor] | None = None
) -> StepFn:
    """Cross-entropy (or ``loss_fn``) on ``(inputs, labels)`` batches, counting top-k hits; with ``record``,
    each batch's top-1 hits per sample (bool, on the CPU) are appended to it, in the loader's order."""
    loss_fn = loss_fn or nn.functional.cross_entropy
    topk = tuple(topk)

    def step(model: nn.Module, batch: Any, device: torch.device) -> StepOutput:
        inputs, labels = move_batch(batch[0], device), move_batch(batch[1], device)
        logits = logits_of(model(inputs))  # a ModelOutput (transformers) gives its .logits
        loss = loss_fn(logits, labels)
        stats = topk_hits(logits.detach(), labels, topk)
        if record is not None:
            record.append((logits.detach().argmax(-1) == labels).cpu())
        return loss, labels.shape[0], stats

    return step


def topk_hits(logits: torch.Tensor, labels: torch.Tensor, topk: Iterable[int]) -> dict[str, float]:
    stats = {}
    topk = [k for k in topk if k <= logits.shape[-1]]
    if not topk:
        return stats
    best = logits.topk(max(topk), dim=-1).indices
    hits = best == labels.unsqueeze(-1)
    for k in topk:
        stats["acc" if k == 1 else f"top{k}"] = hits[:, :k].any(dim=-1).sum().item()
    return stats


def autocast(device: torch.device, amp: bool):
    """Mixed precision where ``amp`` asks for it: bfloat16 on CPUs and GPUs that have it, else float16
    (the one autocast of every training and evaluation pass)."""
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _finish(sums: dict[str, float], n: float) -> dict[str, float]:
    return {k: v / max(n, 1) for k, v in sums.items()}


def _reduce(
    loss_sum: float, n: int, sums: dict[str, float], device: torch.device
) -> tuple[float, float, dict[str, float]]:
    keys = sorted(sums)
    reduced = all_reduce_sum([loss_sum, float(n)] + [sums[k] for k in keys], device)
    return reduced[0], reduced[1], dict(zip(keys, reduced[2:]))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    device: torch.device,
    step_fn: StepFn | None = None,
    amp: bool = False,
    progress: bool = False,
    desc: str = "eval",
) -> dict[str, float]:
    """Mean loss and metrics over a loader, in eval mode; restores the model's previous mode."""
    step_fn = step_fn or classification_step(topk=(1, 5))
    was_training = model.training
    model.eval()
    loss_sum, n, sums = 0.0, 0, {}
    try:
        for batch in progress_bar(loader, desc, progress):
            with autocast(device, amp):
                loss, count, stats = step_fn(model, batch, device)
            loss_sum += float(loss) * count
            n += count
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
    finally:
        model.train(was_training)
    loss_sum, total, sums = _reduce(loss_sum, n, sums, device)
    return {"loss": loss_sum / max(total, 1), **_finish(sums, total), "n": int(total)}


@dataclass
class EpochLog:
    epoch: int
    train: dict[str, float]
    val: dict[str, float] | None
    lr: float
    seconds: float

    def row(self) -> dict[str, float]:
        """Flat log row; the first four columns are the original's ``training_logs.csv``."""
        row = {"train_acc": self.train.get("acc", math.nan), "train_loss": self.train["loss"]}
        row["val_acc"] = self.val.get("acc", math.nan) if self.val else math.nan
        row["val_loss"] = self.val["loss"] if self.val else math.nan
        for k, v in self.train.items():
            if k not in ("acc", "loss"):
                row[f"train_{k}"] = v
        for k, v in (self.val or {}).items():
            if k not in ("acc", "loss", "n"):
                row[f"val_{k}"] = v
        row.update(epoch=self.epoch, lr=self.lr, seconds=self.seconds)
        return row


def check_finite(loss: torch.Tensor, epoch: int, batch: int, names: Sequence[str] | None = None) -> None:
    """Raise :class:`TrainingDiverged` when a loss is NaN or infinite: a scalar loss, or one loss per
    ``names`` entry (the first bad one is named)."""
    loss = loss.detach()
    bad = ~torch.isfinite(loss)
    if not bool(bad.any()):
        return
    what = (
        f"the loss became {float(loss)}"
        if names is None
        else f"the loss of {names[int(bad.nonzero()[0])]} became {float(loss[bad][0])}"
    )
    raise TrainingDiverged(
        f"training diverged: {what} at epoch {epoch + 1}, batch {batch + 1}; "
        "lower the learning rate (-lr) or clip gradients (--grad-clip)"
    )


def _backward_and_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    grad_clip: float | None,
    clip_params: list[torch.nn.Parameter],
) -> None:
    """One optimizer step from a batch's loss (through the AMP gradient scaler when there is one)."""
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(clip_params, grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(clip_params, grad_clip)
        optimizer.step()


def _train_epoch(
    model: nn.Module,
    train_loader: Iterable,
    optimizer: torch.optim.Optimizer,
    step_fn: StepFn,
    device: torch.device,
    amp: bool,
    scaler: Any,
    grad_clip: float | None,
    clip_params: list[torch.nn.Parameter],
    epoch: int,
    bar_desc: str,
    progress: bool,
    step_schedule: PerStepLR | None,
) -> tuple[dict[str, float], float]:
    """One pass over the training batches, stepping ``step_schedule`` after every optimizer step; returns
    the epoch's mean loss and statistics (all processes) and the learning rate of its last step."""
    loss_sum, n, sums = 0.0, 0, {}
    lr = optimizer.param_groups[0]["lr"]
    bar = progress_bar(train_loader, bar_desc, progress)
    for i, batch in enumerate(bar):
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            loss, count, stats = step_fn(model, batch, device)
        check_finite(loss, epoch, i)
        _backward_and_step(loss, optimizer, scaler, grad_clip, clip_params)
        lr = optimizer.param_groups[0]["lr"]
        if step_schedule is not None:
            step_schedule.step()
        loss_sum += float(loss.detach()) * count
        n += count
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v
        if progress:
            post = {"loss": f"{loss_sum / max(n, 1):.4f}"}
            if "acc" in sums:
                post["acc"] = f"{sums['acc'] / max(n, 1):.4f}"
            bar.set_postfix(
                post, refresh=False
            )  # the bar redraws at its own pace (a log file would get a line per batch)
    bar.close()
    loss_sum, total, sums = _reduce(loss_sum, n, sums, device)
    return {"loss": loss_sum / max(total, 1), **_finish(sums, total)}, lr


def _epoch_line(log: EpochLog) -> str:
    """The original's line per epoch."""
    train_stats, val_stats = log.train, log.val
    line = f"Epoch #{log.epoch} train loss: {train_stats['loss']:.4f}, accuracy: {train_stats.get('acc', math.nan):.4f}"
    if val_stats:
        line += f" | val loss: {val_stats['loss']:.4f}, accuracy: {val_stats.get('acc', math.nan):.4f}"
        if "top5" in val_stats:
            line += f", top-5: {val_stats['top5']:.4f}"
    return line + f" | lr {log.lr:.3g} | {log.seconds:.1f}s"


@dataclass(frozen=True)
class LoopSettings:
    """How the one training loop runs: every option of :func:`fit` that is not data, model or callback.

    ``seed`` seeds each epoch (``seed · 100003 + epoch``), so a run resumed at ``start_epoch`` repeats
    the batches and augmentation draws of the run that went straight through."""

    epochs: int
    device: torch.device
    seed: int | None = None
    grad_clip: float | None = None
    amp: bool = False
    start_epoch: int = 0
    progress: bool = True
    verbose: bool = True
    desc: str = "train"

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", torch.device(self.device))

    def resumed(self, start_epoch: int) -> LoopSettings:
        return replace(self, start_epoch=start_epoch)


EpochOut = TypeVar("EpochOut")


def run_epochs(
    settings: LoopSettings,
    train_batches: Iterable,
    scheduler: Any,
    one_epoch: Callable[[int, PerStepLR | None], EpochOut],
    after_epoch: Callable[[int, EpochOut, float], None],
) -> None:
    """The epoch scaffold of every training: for each epoch from ``settings.start_epoch``, the per-epoch
    seed and the sampler's epoch, then ``one_epoch(epoch, per_step_schedule)`` (train and validate; it
    steps a :class:`~stitchkit.training.optim.PerStepLR` after each optimizer step), then the per-epoch
    schedule step, then ``after_epoch(epoch, what one_epoch returned, seconds)``."""
    per_step, per_epoch = split_schedule(scheduler)
    for epoch in range(settings.start_epoch, settings.epochs):
        if settings.seed is not None:
            # Seeding per epoch makes shuffling and augmentation of epoch e the same whether the run
            # went straight through or was resumed at e.
            torch.manual_seed(settings.seed * 100_003 + epoch)
        sampler = getattr(train_batches, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        started = time.perf_counter()
        out = one_epoch(epoch, per_step)
        if per_epoch is not None:
            per_epoch.step()
        after_epoch(epoch, out, time.perf_counter() - started)


def fit(
    model: nn.Module,
    train_loader: Iterable,
    optimizer: torch.optim.Optimizer,
    settings: LoopSettings,
    *,
    val_loader: Iterable | None = None,
    scheduler: Any = None,
    step_fn: StepFn | None = None,
    val_step_fn: StepFn | None = None,
    on_epoch_end: Callable[[EpochLog], None] | None = None,
) -> list[EpochLog]:
    """Train for ``settings.epochs - settings.start_epoch`` epochs (:func:`run_epochs`); returns one
    :class:`EpochLog` per epoch.

    ``model.train()`` is called each epoch: modules that must stay frozen (donor networks of a
    stitch) override ``train`` to keep their parts in eval mode. The optimizer's parameters are the
    ones clipped. ``scheduler`` is stepped after every epoch, a
    :class:`~stitchkit.training.optim.PerStepLR` after every optimizer step.
    """
    step_fn = step_fn or classification_step()
    device, amp, epochs = settings.device, settings.amp, settings.epochs
    scaler = torch.amp.GradScaler(device.type) if amp and device.type == "cuda" else None
    clip_params = [p for g in optimizer.param_groups for p in g["params"]]
    history: list[EpochLog] = []

    def one_epoch(epoch: int, per_step: PerStepLR | None):
        model.train()
        train_stats, lr = _train_epoch(
            model,
            train_loader,
            optimizer,
            step_fn,
            device,
            amp,
            scaler,
            settings.grad_clip,
            clip_params,
            epoch,
            f"{settings.desc} {epoch + 1}/{epochs}",
            settings.progress,
            per_step,
        )
        val_stats = (
            evaluate(model, val_loader, device, step_fn=val_step_fn, amp=amp, progress=settings.progress)
            if val_loader is not None
            else None
        )
        return train_stats, val_stats, lr

    def after_epoch(epoch: int, out, seconds: float) -> None:
        train_stats, val_stats, lr = out
        log = EpochLog(epoch + 1, train_stats, val_stats, lr, seconds)
        history.append(log)
        if settings.verbose:
            tqdm.write(_epoch_line(log), file=sys.stdout)
        if on_epoch_end is not None:
            on_epoch_end(log)

    run_epochs(settings, train_loader, scheduler, one_epoch, after_epoch)
    return history
