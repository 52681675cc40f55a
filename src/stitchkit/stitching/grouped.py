"""Grouped training and evaluation of a layer grid: all pairs of a grid share every batch.

Trained pair by pair, an 8 × 8 grid runs the front network's prefix 64 times per training batch (once
per pair), reads and augments every image 64 times, and sends small batches through the end suffix.
Grouped, per batch:

1. the data are produced once, and the front network runs **once**, up to its last front layer of the
   grid, giving every front layer's activation (:meth:`GridPass.fronts`);
2. for each end layer, the stitched activations of its front layers are **concatenated** into one
   batch (``group_size`` pairs at most) and the end suffix runs once on it, with one backward pass.

This is exactly per-pair training. Each stitching layer sees only its own slice of the concatenated
batch; the donors are frozen and stay in eval mode, so the suffix treats every sample independently
(BatchNorm uses its running statistics, nothing mixes samples). The summed loss ``Σ_p loss_p`` has
the gradient ``∂loss_p/∂θ_p`` for each pair's parameters ``θ_p``: the same batches, the same
augmentation draws, the same gradients; gradient clipping is per pair, and Adam's state is per
parameter, so one optimizer over all pairs equals one per pair. ``tests/test_grouped.py`` checks the
weights against per-pair training from the same seed.

Evaluation is grouped the same way (:mod:`.grid_evaluation`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import StitchkitError
from ..models.hooks import HookedForward, intermediate_bytes
from ..models.layers import layered
from ..training.loop import EpochLog, LoopSettings, autocast, check_finite, run_epochs
from ..training.optim import OptimConfig, PerStepLR, build_optimizer, build_scheduler
from ..utils.compile import maybe_compile
from ..utils.memory import available_memory
from ..utils.progress import progress_bar
from .stitcher import Stitcher, l1_penalty, model_cut

#: Memory the automatic group size may plan for: this share of the free device memory (CUDA) or of
#: the available RAM (CPU, at most CPU_BUDGET_CAP bytes).
GPU_MEMORY_SHARE = 0.5
CPU_MEMORY_SHARE = 0.25
CPU_BUDGET_CAP = 2 * 2**30
#: On a CPU a suffix pass is fastest when its input is about this big (measured on ResNet-18s: 256
#: samples of a 16-channel 28×28 map beat 64 and 1024, and 64 samples of a 64-channel one beat 256;
#: larger activations no longer fit the caches); a GPU takes as many as its memory holds.
CPU_BYTES_PER_PASS = 16 * 2**20


@dataclass
class GridPair:
    """One stitch of a grid: its layers and its :class:`Stitcher` (stitching layer fitted in place)."""

    front_layer: str
    end_layer: str
    stitcher: Stitcher

    @property
    def label(self) -> str:
        return f"{self.front_layer}->{self.end_layer}"


def plan_groups(pairs: Sequence[GridPair], group_size: int) -> list[list[GridPair]]:
    """The suffix passes: pairs with the same end layer, in the order given, ``group_size`` at most each."""
    if group_size < 1:
        raise StitchkitError(f"the group size must be at least 1 pair per suffix pass, got {group_size}")
    by_end: dict[str, list[GridPair]] = {}
    for pair in pairs:
        by_end.setdefault(pair.end_layer, []).append(pair)
    return [same[i : i + group_size] for same in by_end.values() for i in range(0, len(same), group_size)]


# --- memory -----------------------------------------------------------------------------------------
def suffix_bytes_per_sample(end_model: nn.Module, end_layer: str, target_shape: Sequence[int]) -> int:
    """Bytes of every intermediate tensor of the end suffix for one sample (float32): about what one
    sample keeps alive for the backward pass."""
    suffix = model_cut(end_model, "suffix", end_layer)
    param = next(end_model.parameters(), None)
    x = torch.zeros(1, *target_shape, device=param.device if param is not None else "cpu")
    if isinstance(suffix, HookedForward):  # a model cut with hooks has no graph: count its modules' outputs
        return intermediate_bytes(suffix, x)
    with torch.no_grad():
        ShapeProp(suffix).propagate(x)
    total = math.prod(target_shape)
    for node in suffix.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if node.op in ("call_module", "call_function", "call_method") and hasattr(meta, "shape"):
            total += math.prod(meta.shape)
    return 4 * total


def memory_budget(device: torch.device) -> int:
    """Bytes the automatic group size may plan for on ``device`` (see the module constants)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * GPU_MEMORY_SHARE)
    available = available_memory()
    if available is None:
        available = 4 * 2**30
    return int(min(available * CPU_MEMORY_SHARE, CPU_BUDGET_CAP))


def auto_group_size(pairs: Sequence[GridPair], batch_size: int, device: torch.device | str) -> int:
    """Pairs per suffix pass: as many as the memory budget holds for the most expensive end layer (on
    a CPU no larger than :data:`CPU_BYTES_PER_PASS` of suffix input), at least 1 and at most the largest
    number of pairs sharing an end layer."""
    device = torch.device(device)
    if not pairs:
        return 1
    per_end: dict[str, int] = {}
    cost: dict[str, int] = {}
    for pair in pairs:
        per_end[pair.end_layer] = per_end.get(pair.end_layer, 0) + 1
        if pair.end_layer not in cost:
            cost[pair.end_layer] = suffix_bytes_per_sample(
                pair.stitcher.end_model, pair.end_layer, pair.stitcher.target_shape
            )
    per_pair_batch = max(cost.values()) * batch_size
    fits = max(1, memory_budget(device) // max(per_pair_batch, 1))
    if device.type == "cpu":
        largest_input = max(4 * math.prod(p.stitcher.target_shape) for p in pairs) * batch_size
        fits = min(fits, max(1, CPU_BYTES_PER_PASS // largest_input))
    return int(min(fits, max(per_end.values())))


# --- one grouped pass ---------------------------------------------------------------------------------
class GridPass:
    """The shared parts of a grid's forward passes: the front extractor for all front layers, the end
    extractor for all end layers (for residuals), and each group's concatenated suffix pass."""

    def __init__(
        self,
        pairs: Sequence[GridPair],
        group_size: int,
        *,
        donors: bool = False,
        channels_last: bool = False,
        compile: bool = False,
    ):
        if not pairs:
            raise StitchkitError("a grid needs at least one pair")
        self.pairs = list(pairs)
        self.groups = plan_groups(self.pairs, group_size)
        first = self.pairs[0].stitcher
        self.front_model, self.end_model = first.front_model, first.end_model
        front_order, end_order = layered(self.front_model).layers, layered(self.end_model).layers
        self.front_layers = sorted({p.front_layer for p in self.pairs}, key=front_order.index)
        self.end_layers = sorted({p.end_layer for p in self.pairs}, key=end_order.index)
        self.channels_last = channels_last
        self.front_extractor = maybe_compile(layered(self.front_model).extractor(self.front_layers), compile)
        self.end_extractor = maybe_compile(layered(self.end_model).extractor(self.end_layers), compile)
        if donors:
            self.front_with_logits = maybe_compile(
                layered(self.front_model).extractor(self.front_layers, with_logits=True), compile
            )
            self.end_with_logits = maybe_compile(
                layered(self.end_model).extractor(self.end_layers, with_logits=True), compile
            )
        self.suffixes = {
            layer: maybe_compile(model_cut(self.end_model, "suffix", layer), compile) for layer in self.end_layers
        }
        self.index = {id(p): i for i, p in enumerate(self.pairs)}
        self._extractors: dict[tuple, nn.Module] = {}

    def _input(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    @torch.no_grad()
    def fronts(self, x: Tensor, *, with_logits: bool = False) -> dict[str, Tensor]:
        return (self.front_with_logits if with_logits else self.front_extractor)(self._input(x))

    @torch.no_grad()
    def ends(self, x: Tensor, *, with_logits: bool = False) -> dict[str, Tensor]:
        return (self.end_with_logits if with_logits else self.end_extractor)(self._input(x))

    @torch.no_grad()
    def extract(self, which: str, x: Tensor, layers: Sequence[str], *, with_logits: bool = False) -> dict[str, Tensor]:
        """Activations of any ``layers`` of the front or end network (``which``) from one pass."""
        if list(layers) == (self.front_layers if which == "front" else self.end_layers):
            return (self.fronts if which == "front" else self.ends)(x, with_logits=with_logits)
        model = self.front_model if which == "front" else self.end_model
        key = (which, tuple(layers), with_logits)
        if key not in self._extractors:
            self._extractors[key] = layered(model).extractor(list(layers), with_logits=with_logits)
        return self._extractors[key](self._input(x))

    def rest(self, which: str, layer: str):
        """The rest of the front or end network after ``layer`` (its logits from a cached activation)."""
        return model_cut(self.front_model if which == "front" else self.end_model, "suffix", layer)

    def group_forward(self, group: Sequence[GridPair], fronts: dict[str, Tensor]) -> tuple[list[Tensor], Tensor]:
        """Each pair's stitched activation and the logits of all of them from one suffix pass
        (rows ``[k·B, (k+1)·B)`` belong to the group's k-th pair)."""
        stitched = [pair.stitcher.stitch(fronts[pair.front_layer]) for pair in group]
        batch = stitched[0] if len(stitched) == 1 else torch.cat(stitched)
        return stitched, self.suffixes[group[0].end_layer](batch)


# --- training -------------------------------------------------------------------------------------
@dataclass
class GroupedTrainingState:
    """Where grouped training stands after an epoch (to continue an interrupted grid)."""

    epoch: int
    layers: list[dict[str, Tensor]]
    optimizer: dict
    scheduler: dict
    history: list[list[dict[str, float]]] = field(default_factory=list)


def _pair_parameters(pairs: Sequence[GridPair]) -> list[list[nn.Parameter]]:
    return [pair.stitcher.trainable_parameters() for pair in pairs]


def _resume_from(state: GroupedTrainingState, pairs: Sequence[GridPair], optimizer, scheduler) -> list[list[EpochLog]]:
    """Install a saved state's layers, optimizer and schedule; returns its histories."""
    for pair, layer_state in zip(pairs, state.layers, strict=True):
        pair.stitcher.layer.load_state_dict(layer_state)
    optimizer.load_state_dict(state.optimizer)
    scheduler.load_state_dict(state.scheduler)
    return [[_log_from_row(row) for row in rows] for rows in state.history]


def _train_epoch(
    grid: GridPass,
    train_batches: Iterable,
    optimizer,
    params: list[list[nn.Parameter]],
    epoch: int,
    loop: LoopSettings,
    l1: float,
    step_schedule: PerStepLR | None,
) -> tuple[list[float], list[float], float]:
    """One pass over the training batches for every pair, stepping ``step_schedule`` after every optimizer
    step; returns each pair's mean loss and accuracy and the learning rate of the last step."""
    pairs, device = grid.pairs, loop.device
    labels_of = [pair.label for pair in pairs]
    lr = optimizer.param_groups[0]["lr"]
    loss_sums = torch.zeros(len(pairs), dtype=torch.float64, device=device)
    hit_sums = torch.zeros(len(pairs), dtype=torch.long, device=device)
    n = 0
    bar = progress_bar(train_batches, f"{loop.desc} {epoch + 1}/{loop.epochs}", loop.progress)
    for i, (inputs, labels) in enumerate(bar):
        optimizer.zero_grad(set_to_none=True)
        x = inputs.to(device, non_blocking=True)
        y = torch.as_tensor(labels).to(device, non_blocking=True)
        b = y.shape[0]
        losses, hits = _train_step(grid, x, y, l1, loop.amp, device)
        check_finite(losses, epoch, i, labels_of)
        if loop.grad_clip:
            for group in params:
                torch.nn.utils.clip_grad_norm_(group, loop.grad_clip)
        optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        if step_schedule is not None:
            step_schedule.step()
        loss_sums += losses.detach().double() * b
        hit_sums += hits
        n += b
    bar.close()
    return (loss_sums / max(n, 1)).tolist(), (hit_sums.double() / max(n, 1)).tolist(), lr


def _state_after(
    epoch: int, pairs: Sequence[GridPair], optimizer, scheduler, history: list[list[EpochLog]]
) -> GroupedTrainingState:
    layers = [{k: v.detach().cpu().clone() for k, v in p.stitcher.layer.state_dict().items()} for p in pairs]
    rows = [[log.row() for log in logs] for logs in history]
    return GroupedTrainingState(epoch, layers, optimizer.state_dict(), scheduler.state_dict(), rows)


def grouped_task_loss_match(
    grid: GridPass,
    train_batches: Iterable,
    loop: LoopSettings,
    *,
    optim: OptimConfig | None = None,
    l1: float = 0.0,
    validate: Callable[[int], list[dict[str, float]]] | None = None,
    resume: GroupedTrainingState | None = None,
    on_epoch_end: Callable[[GroupedTrainingState], None] | None = None,
) -> list[list[EpochLog]]:
    """Task loss matching of every pair of ``grid`` at once (module docstring); returns one list of
    :class:`~stitchkit.training.loop.EpochLog` per pair. A single pair is a grid of one
    (:func:`~.matching.task_loss_match`).

    The epochs run in the one training loop's scaffold (:func:`stitchkit.training.loop.run_epochs`:
    per-epoch seeding, sampler epochs, the LR schedule stepped per epoch or per optimizer step); the
    loss is cross-entropy + ``l1`` · ‖W‖₁ + ‖b‖₁, with the loop's divergence check and per-pair
    gradient clipping. ``validate(epoch)`` returns every pair's ``{"loss", "acc", "n"}`` after each
    epoch. ``resume`` continues from a saved state; ``on_epoch_end`` receives the state after every epoch.
    """
    optim = optim or OptimConfig()
    pairs = grid.pairs
    params = _pair_parameters(pairs)
    optimizer = build_optimizer([p for group in params for p in group], optim)
    scheduler = build_scheduler(optimizer, optim, loop.epochs, train_batches)
    history: list[list[EpochLog]] = [[] for _ in pairs]
    if resume is not None:
        history, loop = _resume_from(resume, pairs, optimizer, scheduler), loop.resumed(resume.epoch)

    def one_epoch(epoch: int, per_step: PerStepLR | None):
        for pair in pairs:
            pair.stitcher.train()
        losses, accs, lr = _train_epoch(grid, train_batches, optimizer, params, epoch, loop, l1, per_step)
        return losses, accs, lr, (validate(epoch) if validate is not None else None)

    def after_epoch(epoch: int, out, seconds: float) -> None:
        losses, accs, lr, val = out
        for k in range(len(pairs)):
            train = {"loss": losses[k], "acc": accs[k]}
            history[k].append(EpochLog(epoch + 1, train, val[k] if val is not None else None, lr, seconds))
        if loop.verbose:
            mean_val = sum(v["acc"] for v in val) / len(val) if val else math.nan
            print(
                f"{loop.desc} epoch {epoch + 1}/{loop.epochs}: mean train loss {sum(losses) / len(pairs):.4f}, "
                f"mean val accuracy {mean_val:.4f} over {len(pairs)} pairs | {seconds:.1f}s",
                file=sys.stdout,
                flush=True,
            )
        if on_epoch_end is not None:
            on_epoch_end(_state_after(epoch + 1, pairs, optimizer, scheduler, history))

    run_epochs(loop, train_batches, scheduler, one_epoch, after_epoch)
    for pair in pairs:
        pair.stitcher.train(False)
    return history


def _train_step(
    grid: GridPass, x: Tensor, y: Tensor, l1: float, amp: bool, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Forward and backward of every group for one batch; returns each pair's loss and top-1 hits (in
    the grid's order)."""
    b = y.shape[0]
    losses: list[Tensor | None] = [None] * len(grid.pairs)
    hits: list[Tensor | None] = [None] * len(grid.pairs)
    with autocast(device, amp):
        fronts = grid.fronts(x)
    for group in grid.groups:
        with autocast(device, amp):
            _, logits = grid.group_forward(group, fronts)
        logits = logits.float()
        k_y = y.repeat(len(group))
        per_pair = F.cross_entropy(logits, k_y, reduction="none").view(len(group), b).mean(1)
        group_hits = (logits.detach().argmax(-1) == k_y).view(len(group), b).sum(1)
        if l1:
            per_pair = per_pair + l1 * torch.stack([l1_penalty(pair.stitcher) for pair in group])
        per_pair.sum().backward()
        for k, pair in enumerate(group):
            losses[grid.index[id(pair)]] = per_pair[k].detach()
            hits[grid.index[id(pair)]] = group_hits[k]
    return torch.stack(losses), torch.stack(hits)


def _log_from_row(row: dict[str, float]) -> EpochLog:
    """An :class:`EpochLog` back from its :meth:`~EpochLog.row` (for resumed histories)."""
    train = {"loss": row["train_loss"], "acc": row["train_acc"]}
    val = (
        None
        if row.get("val_loss") is None or (isinstance(row.get("val_loss"), float) and math.isnan(row["val_loss"]))
        else {
            "loss": row["val_loss"],
            "acc": row["val_acc"],
            **{k[4:]: v for k, v in row.items() if k.startswith("val_") and k not in ("val_loss", "val_acc")},
        }
    )
    return EpochLog(int(row["epoch"]), train, val, row["lr"], row["seconds"])


__all__ = [
    "GridPair",
    "GridPass",
    "GroupedTrainingState",
    "auto_group_size",
    "grouped_task_loss_match",
    "memory_budget",
    "plan_groups",
    "suffix_bytes_per_sample",
]
