"""Training OOD detectors for the layers of a network (the original's
``exec_train_representation_classifier.py``, spec 1.4).

For each requested layer of a frozen *source* network, a representation classifier (``repr_cls_*``)
learns to classify the layer's activations and then becomes an energy-based OOD detector for that
layer's representation space:

1. **Supervised pre-training** (``epochs``): cross-entropy on the source's activations of the train
   split of ``dataset`` (with its default augmentation), validated on the test split. Adam(lr, wd),
   ×0.1 at the epochs in ``reduce_lr_epochs``.
2. **Energy fine-tuning with outlier exposure** (``ft_epochs``; Liu, Wang, Owens & Li, NeurIPS 2020,
   section 3): every batch is half in-distribution (the train split of ``ft_id_dataset``, without
   augmentation by default) and half auxiliary outliers (the train split of ``ft_ood_dataset``, with its
   flip+crop augmentation, converted to the ID input shape). Each epoch draws
   ``min(|ID|, |OOD|)`` (or ``ft_samples``) fresh, disjoint samples from each set. The loss is
   ``CE(ID) + 0.1·(mean relu(E_in − m_in)² + mean relu(m_out − E_out)²)`` with
   ``E = −logsumexp(logits)``, m_in = −25, m_out = −7 (:func:`energy_finetune_loss`); the ``OE`` score
   uses ``CE(ID) + 0.5·CE(OOD, uniform)`` instead (Hendrycks et al. 2019). A new Adam with the same
   LR; ×0.1 after ``ft_epochs // 2`` epochs.

What is fixed relative to the original (spec 6.1 and 6.2):

* the source network runs frozen, in eval mode, under ``no_grad``, and **only up to the layer**;
  detectors for several layers share **one pass** of the source per batch (:func:`train_detectors`);
* the seed is honoured; ``-d``, ``-m``, ``-ftidd`` have defaults (the source checkpoint's dataset,
  ``repr_cls_resnet18`` / ``repr_cls_vit_tiny`` by activation shape, ``-d``);
* the fine-tuning LR decay is stepped **per epoch**. The original stepped its ``MultiStepLR([fe//2])``
  after every *batch*, so the LR dropped ×0.1 after ``fe//2`` iterations; ``ft_lr_per_batch=True``
  (``--ft-lr-per-batch``) reproduces that. With ``ft_epochs`` < 2 the per-epoch schedule has no decay;
* the logged ``ce_loss`` is the mean CE over the ID samples (the original divided by ID+OOD, about
  half the true value);
* the registry stores the fine-tuning ID set as ``id_dataset`` and identifies the source by content
  hash; ids are deterministic (:mod:`stitchkit.ood.registry`).

Outputs per layer (``save_dir`` itself for one layer, ``save_dir/<layer>`` for several):
``training_logs.csv`` (``train_acc, train_loss, val_acc, val_loss`` + epoch, lr, seconds),
``model_<e>.pt`` every ``save_frequency`` epochs, ``ft_logs.csv`` (``ft_loss, ce_loss, train_acc,
val_ce_loss, val_acc`` + the regulariser, mean ID/OOD energies, lr, seconds), ``ft_model_<e>.pt`` every
fine-tuning epoch (bare state_dicts, as the original), ``config.txt`` (the arguments) and
``config.json`` (the resolved configuration); then ``<final_save_dir>/<id>.pt`` and its
``meta.json`` entry.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import __version__
from ..choices import OOD_SCORES  # torch-free home of the names (the CLI reads them)
from ..errors import StitchkitError, unknown_name
from ..utils.io import ensure_writable_dir, write_json_atomic

# Configuration fields that do not change the trained weights: left out of the detector id.
_NOT_IN_ID = ("save_dir", "final_save_dir", "data_root", "ft_id_root", "ft_ood_root", "device", "workers", "prefetch",
              "progress", "verbose", "val_subset", "save_frequency", "register", "overwrite")


@dataclass
class DetectorTrainConfig:
    """Everything that shapes a detector training run. Defaults are the original's (spec 1.4)."""

    save_dir: str
    model_type: str | None = None  # -m; None: repr_cls_resnet18 for (C,H,W) layers, repr_cls_vit_tiny for (T,D)
    model_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"width": 8}
    dataset: str | None = None  # -d; None: the source checkpoint's dataset, else cifar10
    data_root: str | None = None
    epochs: int = 100  # -e, supervised pre-training
    batch_size: int = 64
    seed: int = 0
    lr: float = 1e-3
    weight_decay: float = 1e-5
    reduce_lr_epochs: list[int] = field(default_factory=list)  # -rlre
    save_frequency: int = 1
    ft_id_dataset: str | None = None  # -ftidd; None: = dataset
    ft_id_root: str | None = None
    ft_ood_dataset: str = "outlier_exposure"  # -ftoodd
    ft_ood_root: str | None = None
    ft_epochs: int = 20  # -fe
    m_in: float = -25.0
    m_out: float = -7.0
    score: str = "energy"  # or "OE"
    energy_weight: float = 0.1
    oe_weight: float = 0.5
    ft_lr_per_batch: bool = False  # parity: the original's MultiStepLR([fe//2]) stepped every batch
    ft_id_augment: bool = False  # the original used ftidd's default train transform (none for CIFAR-5M)
    train_subset: int | None = None  # pre-train on a fixed random subset of N images
    ft_samples: int | None = None  # cap the samples per fine-tuning epoch (each side)
    val_subset: int | None = None  # validate on the first N test images (None: all; 0: no validation)
    final_save_dir: str = "./models/repr_cls_ood_detectors"  # -fdir
    register: bool = True
    overwrite: bool = False  # train into a -dir that already holds finished detectors
    device: str = "auto"
    workers: int = 0
    prefetch: int = 1
    progress: bool = True
    verbose: bool = True

    def validate(self) -> "DetectorTrainConfig":
        if self.score not in OOD_SCORES:
            raise unknown_name("OOD score", self.score, OOD_SCORES)
        checks = [
            (self.epochs >= 0, f"pre-training epochs (-e) must be non-negative, got {self.epochs}"),
            (self.ft_epochs >= 0, f"fine-tuning epochs (-fe) must be non-negative, got {self.ft_epochs}"),
            (self.batch_size >= 2, f"batch size must be at least 2 (fine-tuning batches are half ID, half outliers), got {self.batch_size}"),
            (self.save_frequency >= 1, f"save frequency (-sf) must be at least 1 (the original's 0 crashed), got {self.save_frequency}"),
            (self.lr > 0, f"learning rate must be positive, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be non-negative, got {self.weight_decay}"),
            (all(m > 0 for m in self.reduce_lr_epochs), f"LR decay epochs (-rlre) must be positive, got {self.reduce_lr_epochs}"),
            (self.train_subset is None or self.train_subset >= 1, f"training subset must be at least 1 image, got {self.train_subset}"),
            (self.ft_samples is None or self.ft_samples >= 1, f"fine-tuning samples per epoch must be at least 1, got {self.ft_samples}"),
            (self.val_subset is None or self.val_subset >= 0, f"validation subset must be non-negative, got {self.val_subset}"),
            (self.workers >= 0, f"loader workers must be non-negative, got {self.workers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise StitchkitError(message)
        return self

    def identity(self) -> dict[str, Any]:
        """The result-relevant part of the configuration (what the detector id hashes)."""
        return {k: v for k, v in asdict(self).items() if k not in _NOT_IN_ID}


# ------------------------------------------------------------------------------------------------
# losses


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


# ------------------------------------------------------------------------------------------------
# helpers


def default_detector_type(activation_shape: Sequence[int]) -> str:
    """``repr_cls_resnet18`` for conv maps ``(C, H, W)``, ``repr_cls_vit_tiny`` for tokens ``(T, D)``."""
    if len(activation_shape) == 3:
        return "repr_cls_resnet18"
    if len(activation_shape) == 2:
        return "repr_cls_vit_tiny"
    raise StitchkitError(f"no representation classifier takes activations of shape {tuple(activation_shape)}; "
                         "detectors need (C, H, W) maps or (T, D) token sequences")


def build_detector_model(model_type: str, activation_shape: Sequence[int], num_classes: int, input_shape: Sequence[int], options: dict | None = None) -> nn.Module:
    """A representation classifier for activations of ``activation_shape`` from a network whose input
    is ``input_shape`` (C, H, W): conv detectors resize the map to (H, W); token detectors take D."""
    from ..models import get_model

    shape = tuple(activation_shape)
    if model_type.startswith("repr_cls_resnet") and len(shape) != 3:
        raise StitchkitError(f"{model_type} takes (C, H, W) activations, but the layer gives {shape}; use repr_cls_vit_tiny for token sequences")
    if model_type.startswith("repr_cls_vit") and len(shape) != 2:
        raise StitchkitError(f"{model_type} takes (T, D) token sequences, but the layer gives {shape}; use repr_cls_resnet18 for conv maps")
    in_channels = shape[0] if len(shape) == 3 else shape[-1]
    return get_model(model_type, num_classes=num_classes, in_channels=in_channels, input_size=tuple(input_shape[1:]), **(options or {}))


class _Paired:
    """Zip an ID loader and an outlier loader; one item = ((x_in, y_in), (x_out, y_out))."""

    def __init__(self, id_loader, ood_loader):
        self.id_loader, self.ood_loader = id_loader, ood_loader

    def __iter__(self):
        return zip(self.id_loader, self.ood_loader)

    def __len__(self) -> int:
        return min(len(self.id_loader), len(self.ood_loader))


def _layer_dirs(save_dir: Path, layers: Sequence[str]) -> dict[str, Path]:
    if len(layers) == 1:
        return {layers[0]: save_dir}
    return {layer: save_dir / layer for layer in layers}


@dataclass
class TrainedDetector:
    """One trained detector: its layer, model, output folder, registry id and final metrics."""

    layer: str
    model: nn.Module
    save_dir: str
    detector_id: str | None
    registry_path: str | None
    meta: dict[str, Any]
    pretrain_log: list[dict[str, float]]
    finetune_log: list[dict[str, float]]


# ------------------------------------------------------------------------------------------------
# training


def train_detectors(
    source: nn.Module,
    layers: Sequence[str],
    config: DetectorTrainConfig,
    *,
    source_path: str | None = None,
    source_type: str | None = None,
    input_shape: Sequence[int] | None = None,
    argv_config: dict[str, Any] | None = None,
) -> list[TrainedDetector]:
    """Train one OOD detector per layer of ``source``, sharing one source pass per batch.

    ``source`` is a network built by :func:`stitchkit.models.get_model` (its checkpoint path and type
    are recorded in the registry when given). ``input_shape`` is its input (C, H, W); default the
    dataset's. See the module docstring for the phases and outputs.
    """
    from ..activations import model_fingerprint
    from ..data import MultiEpochDisjointSubsetSampler, dataset_info
    from ..models.checkpoint import save_state_dict
    from ..models.layers import layered
    from ..training import OptimConfig, build_optimizer, build_scheduler, fit
    from ..data.loading import make_batches
    from ..training.base import _write_csv
    from ..utils.device import resolve_device
    from ..utils.seed import set_seed
    from .registry import detector_id
    from .train_inputs import check_outputs, load_training_data

    config.validate()
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise StitchkitError("no layers to train detectors for")
    cut = layered(source)
    for layer in layers:
        cut.check_layer(layer)
    dataset = config.dataset or "cifar10"
    info = dataset_info(dataset)
    ft_id_name = config.ft_id_dataset or info.name
    ft_info = dataset_info(ft_id_name)
    if ft_info.num_classes != info.num_classes:
        raise StitchkitError(f"the fine-tuning ID set {ft_info.name!r} has {ft_info.num_classes} classes but the detector is "
                             f"pre-trained on {info.name!r} with {info.num_classes}; use an ID set with the same classes")
    ood_info = dataset_info(config.ft_ood_dataset)
    input_shape = tuple(input_shape or info.shape)
    device = resolve_device(config.device)
    save_dir = Path(config.save_dir)
    dirs = _layer_dirs(save_dir, layers)
    registry = check_outputs(config, dirs)
    data = load_training_data(config, info.name, ft_info.name, input_shape)

    set_seed(config.seed)
    source.eval().requires_grad_(False)
    source.to(device)
    source_hash = model_fingerprint(source)
    shapes = cut.shapes(input_shape, layers)
    extractor = cut.extractor(layers).eval()
    model_type = {layer: config.model_type or default_detector_type(shapes[layer]) for layer in layers}
    detectors = nn.ModuleDict()
    keys = {layer: f"d{i}" for i, layer in enumerate(layers)}
    for layer in layers:
        detectors[keys[layer]] = build_detector_model(model_type[layer], shapes[layer], info.num_classes, input_shape, config.model_options)
    detectors.to(device)

    resolved = {
        "command": "detector train", "stitchkit_version": __version__, "source_model_path": source_path, "source_model_type": source_type,
        "source_model_hash": source_hash, "layers": layers, "dataset": info.name, "ft_id_dataset": ft_info.name,
        "input_shape": list(input_shape), "activation_shapes": {k: list(v) for k, v in shapes.items()},
        "model_types": model_type, "model_specs": {layer: detectors[keys[layer]].stitchkit_spec for layer in layers},
        "settings": asdict(config), "device": str(device), "samples": data.counts(),
        "conventions": {
            "energy": "E = −logsumexp(logits), T = 1; higher = more OOD",
            "pretrain_lr_schedule": "×0.1 at each -rlre epoch, stepped per epoch",
            "finetune_lr_schedule": "×0.1 after ft_epochs//2 " + ("iterations (batches; the original's behaviour)" if config.ft_lr_per_batch else "epochs"),
            "ce_loss": "mean CE over the ID samples",
        },
    }
    ensure_writable_dir(save_dir)  # only now: every check above has passed
    for layer, d in dirs.items():
        ensure_writable_dir(d)
        write_json_atomic(d / "config.txt", argv_config if argv_config is not None else asdict(config))
        write_json_atomic(d / "config.json", {**resolved, "layer": layer})

    def acts_of(x: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            return extractor(x)

    def say(text: str) -> None:
        if config.verbose:
            print(text, flush=True)

    tag = (lambda layer: f"[{layer}] ") if len(layers) > 1 else (lambda layer: "")

    # -- phase B: supervised pre-training --------------------------------------------------------
    def ce_step(model: nn.Module, batch: Any, dev: torch.device, energy: bool = False):
        """Cross-entropy of every layer's detector; with ``energy`` also the summed energies (validation)."""
        x, y = batch[0].to(dev, non_blocking=True), batch[1].to(dev, non_blocking=True)
        acts = acts_of(x)
        total, stats = 0.0, {}
        for layer in layers:
            logits = model[keys[layer]](acts[layer])
            ce = F.cross_entropy(logits, y)
            total = total + ce
            stats[f"{layer}|loss"] = float(ce.detach()) * y.shape[0]
            stats[f"{layer}|acc"] = float((logits.detach().argmax(-1) == y).sum())
            if energy:
                stats[f"{layer}|energy"] = float((-torch.logsumexp(logits.detach().float(), dim=-1)).sum())
        return total, y.shape[0], stats

    val_loader = None
    if data.test is not None:
        val_loader = make_batches(data.test, config.batch_size, shuffle=False, workers=config.workers, prefetch=config.prefetch, device=device)

    pre_logs: dict[str, list[dict[str, float]]] = {layer: [] for layer in layers}
    ft_logs: dict[str, list[dict[str, float]]] = {layer: [] for layer in layers}
    started = time.perf_counter()
    if config.epochs > 0:
        train_loader = make_batches(data.train, config.batch_size, shuffle=True, workers=config.workers, prefetch=config.prefetch, device=device)
        optim_cfg = OptimConfig(lr=config.lr, weight_decay=config.weight_decay, milestones=list(config.reduce_lr_epochs))
        optimizer = build_optimizer(detectors.parameters(), optim_cfg)
        scheduler = build_scheduler(optimizer, optim_cfg, config.epochs)

        def on_pre_epoch(log) -> None:
            for layer in layers:
                row = {
                    "train_acc": log.train.get(f"{layer}|acc", math.nan), "train_loss": log.train.get(f"{layer}|loss", math.nan),
                    "val_acc": log.val.get(f"{layer}|acc", math.nan) if log.val else math.nan,
                    "val_loss": log.val.get(f"{layer}|loss", math.nan) if log.val else math.nan,
                    "epoch": log.epoch, "lr": log.lr, "seconds": log.seconds,
                }
                pre_logs[layer].append(row)
                _write_csv(dirs[layer] / "training_logs.csv", pre_logs[layer])
                if log.epoch % config.save_frequency == 0:
                    save_state_dict(dirs[layer] / f"model_{log.epoch}.pt", detectors[keys[layer]])
                say(f"{tag(layer)}Epoch #{log.epoch} train loss: {row['train_loss']:.4f}, accuracy: {row['train_acc']:.4f}")
                if log.val:
                    say(f"{tag(layer)}Epoch #{log.epoch} val loss: {row['val_loss']:.4f}, accuracy: {row['val_acc']:.4f}")

        fit(detectors, train_loader, optimizer=optimizer, epochs=config.epochs, device=device, val_loader=val_loader, scheduler=scheduler,
            step_fn=ce_step, val_step_fn=ce_step, seed=config.seed, on_epoch_end=on_pre_epoch, progress=config.progress, verbose=False,
            desc="detector pre-training")
    pretrain_seconds = time.perf_counter() - started

    # -- phase C: energy fine-tuning with outlier exposure ---------------------------------------
    started = time.perf_counter()
    if config.ft_epochs > 0:
        id_set, ood_set, n_per_epoch = data.ft_id, data.ft_ood, data.ft_per_epoch
        half = config.batch_size // 2
        id_sampler = MultiEpochDisjointSubsetSampler(id_set, int(n_per_epoch), generator=torch.Generator().manual_seed(config.seed * 7919 + 1))
        ood_sampler = MultiEpochDisjointSubsetSampler(ood_set, int(n_per_epoch), generator=torch.Generator().manual_seed(config.seed * 7919 + 2))
        loader = _Paired(
            make_batches(id_set, half, shuffle=False, sampler=id_sampler, workers=config.workers, prefetch=config.prefetch, device=device),
            make_batches(ood_set, half, shuffle=False, sampler=ood_sampler, workers=config.workers, prefetch=config.prefetch, device=device),
        )
        milestone = config.ft_epochs // 2
        if config.ft_lr_per_batch:
            optim_cfg = OptimConfig(lr=config.lr, weight_decay=config.weight_decay)
            scheduler = None
        else:
            optim_cfg = OptimConfig(lr=config.lr, weight_decay=config.weight_decay, milestones=[milestone] if milestone > 0 else [])
        optimizer = build_optimizer(detectors.parameters(), optim_cfg)
        if not config.ft_lr_per_batch:
            scheduler = build_scheduler(optimizer, optim_cfg, config.ft_epochs)
        iteration = [0]

        def ft_step(model: nn.Module, batch: Any, dev: torch.device):
            (x_in, y_in), (x_out, _) = batch
            if config.ft_lr_per_batch and model.training:
                # The original's MultiStepLR([fe//2]) stepped after every batch: batch i (counted over
                # the whole fine-tuning) runs at lr·0.1 once i ≥ fe//2.
                factor = 0.1 if iteration[0] >= milestone else 1.0
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * factor
                iteration[0] += 1
            x_in, y_in, x_out = x_in.to(dev, non_blocking=True), y_in.to(dev, non_blocking=True), x_out.to(dev, non_blocking=True)
            n_in = x_in.shape[0]
            acts = acts_of(torch.cat([x_in, x_out]))
            total, stats = 0.0, {"n_id": float(n_in)}
            n = n_in + x_out.shape[0]
            for layer in layers:
                logits = model[keys[layer]](acts[layer])
                loss, parts = energy_finetune_loss(logits[:n_in], y_in, logits[n_in:], score=config.score, m_in=config.m_in, m_out=config.m_out,
                                                   energy_weight=config.energy_weight, oe_weight=config.oe_weight)
                total = total + loss
                stats[f"{layer}|ft_loss"] = float(loss.detach()) * n
                stats[f"{layer}|ce"] = float(parts["ce"]) * n_in
                stats[f"{layer}|reg"] = float(parts["reg"]) * n
                stats[f"{layer}|acc"] = float((logits[:n_in].detach().argmax(-1) == y_in).sum())
                stats[f"{layer}|energy_in"] = float(parts["energy_in"].sum())
                stats[f"{layer}|energy_out"] = float(parts["energy_out"].sum())
            return total, n, stats

        def val_step(model: nn.Module, batch: Any, dev: torch.device):
            return ce_step(model, batch, dev, energy=True)

        def on_ft_epoch(log) -> None:
            share_id = log.train["n_id"]  # fraction of ID samples among all (fit divides sums by the total)
            share_out = 1.0 - share_id
            for layer in layers:
                t, v = log.train, log.val or {}
                row = {
                    "ft_loss": t[f"{layer}|ft_loss"], "ce_loss": t[f"{layer}|ce"] / share_id, "train_acc": t[f"{layer}|acc"] / share_id,
                    "val_ce_loss": v.get(f"{layer}|loss", math.nan), "val_acc": v.get(f"{layer}|acc", math.nan),
                    "reg_loss": t[f"{layer}|reg"], "mean_energy_in": t[f"{layer}|energy_in"] / share_id,
                    "mean_energy_out": t[f"{layer}|energy_out"] / share_out if share_out > 0 else math.nan,
                    "val_mean_energy": v.get(f"{layer}|energy", math.nan), "epoch": log.epoch, "lr": log.lr, "seconds": log.seconds,
                }
                ft_logs[layer].append(row)
                _write_csv(dirs[layer] / "ft_logs.csv", ft_logs[layer])
                save_state_dict(dirs[layer] / f"ft_model_{log.epoch}.pt", detectors[keys[layer]])
                say(f"{tag(layer)}FT Epoch #{log.epoch} FT loss: {row['ft_loss']:.4f}, CE Loss: {row['ce_loss']:.4f}, accuracy: {row['train_acc']:.4f}, "
                    f"energy ID {row['mean_energy_in']:.2f} / outliers {row['mean_energy_out']:.2f}")
                if log.val:
                    say(f"{tag(layer)}FT Epoch #{log.epoch} val loss: {row['val_ce_loss']:.4f}, accuracy: {row['val_acc']:.4f}")

        fit(detectors, loader, optimizer=optimizer, epochs=config.ft_epochs, device=device, val_loader=val_loader, scheduler=scheduler,
            step_fn=ft_step, val_step_fn=val_step, seed=config.seed + 1, on_epoch_end=on_ft_epoch, progress=config.progress, verbose=False,
            desc="energy fine-tuning")
    finetune_seconds = time.perf_counter() - started

    # -- phase D: publishing ------------------------------------------------------------------------
    results = []
    for layer in layers:
        # defaults resolved, so that spelling a default out does not change the id
        identity = {**config.identity(), "model_type": model_type[layer], "dataset": info.name, "ft_id_dataset": ft_info.name,
                    "ft_ood_dataset": ood_info.name}
        model = detectors[keys[layer]].eval().cpu()
        last_pre = pre_logs[layer][-1] if pre_logs[layer] else {}
        last_ft = ft_logs[layer][-1] if ft_logs[layer] else {}
        meta = {
            "model_type": model_type[layer],
            "source_model_type": source_type or getattr(source, "stitchkit_spec", {}).get("name"),
            "source_model_path": source_path,
            "source_layer": layer,
            "id_dataset": ft_info.name,
            "orig_input_shape": list(input_shape),
            "required_input_shape": list(shapes[layer]),
            "training_loc": str(dirs[layer]),
            "source_model_hash": source_hash,
            "pretrain_dataset": info.name,
            "ood_dataset": config.ft_ood_dataset,
            "num_classes": info.num_classes,
            "model_spec": model.stitchkit_spec,
            "training_config": identity,
            "conventions": {"score": "energy E = −logsumexp(logits), T = 1; higher = more OOD", **resolved["conventions"]},
            "metrics": {
                "pretrain_val_acc": last_pre.get("val_acc"), "finetune_val_acc": last_ft.get("val_acc"),
                "finetune_mean_energy_in": last_ft.get("mean_energy_in"), "finetune_mean_energy_out": last_ft.get("mean_energy_out"),
                "pretrain_seconds": pretrain_seconds, "finetune_seconds": finetune_seconds,
            },
        }
        det_id, reg_path = None, None
        if registry is not None:
            det_id = detector_id(source_hash, layer, identity)
            key = registry.register({k: v.detach().cpu() for k, v in model.state_dict().items()}, meta, det_id)
            reg_path = str(registry.root / key)
            say(f"{tag(layer)}detector {det_id} registered in {registry.meta_path}")
        meta["id"] = det_id
        write_json_atomic(dirs[layer] / "detector.json", meta)
        results.append(TrainedDetector(layer, model, str(dirs[layer]), det_id, reg_path, meta, pre_logs[layer], ft_logs[layer]))
    return results


def train_detectors_for_checkpoint(
    source_model_path: str,
    source_model_type: str | None,
    layers: Sequence[str] | str,
    config: DetectorTrainConfig,
    argv_config: dict[str, Any] | None = None,
    source_options: dict[str, Any] | None = None,
) -> list[TrainedDetector]:
    """:func:`train_detectors` for a source checkpoint (``source_model_type`` ``None``/``"-"``/``"auto"``:
    read from a stitchkit checkpoint); ``layers`` may be ``"all"`` (every stitchable layer), a
    comma-separated string or a list. ``config.dataset`` defaults to the checkpoint's dataset."""
    from ..data import dataset_info
    from ..models.layers import layered
    from ..models.loading import check_fits_dataset
    from ..stitching.experiment import load_donor

    donor = load_donor(source_model_path, source_model_type, dataset=config.dataset, model_options=source_options)
    source = donor.model
    if config.dataset is None:
        config.dataset = donor.dataset or "cifar10"
    info = dataset_info(config.dataset)
    check_fits_dataset(source, info)
    layers = layered(source).resolve(layers)
    return train_detectors(source, layers, config, source_path=str(source_model_path), source_type=donor.model_type,
                           input_shape=info.shape, argv_config=argv_config)
