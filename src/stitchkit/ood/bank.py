"""A bank of OOD detectors, one per layer of a frozen source network, trained together: every batch
runs the source once for all of them (the phases are described in :mod:`stitchkit.ood.train`).

:class:`DetectorBank` checks everything and writes the run's configuration when it is made, then
:meth:`~DetectorBank.pretrain`, :meth:`~DetectorBank.finetune` and :meth:`~DetectorBank.publish` are the
three steps of a run. The detectors' models are built by :mod:`.detector_model`; the fine-tuning's paired
batches and step function are in :mod:`.bank_finetune`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import __version__
from ..activations import model_fingerprint
from ..data import dataset_info
from ..data.loading import make_batches
from ..errors import StitchkitError
from ..models.checkpoint import save_state_dict
from ..models.layers import layered
from ..models.loading import recorded_augmentation
from ..training.loop import EpochLog, LoopSettings, fit
from ..training.optim import build_optimizer, build_scheduler, describe_schedule
from ..utils.device import resolve_device
from ..utils.io import ensure_writable_dir, write_csv_atomic, write_json_atomic
from ..utils.progress import printer
from ..utils.seed import set_seed
from .bank_finetune import FinetuneStep, paired_batches
from .detector_model import build_detector_model, default_detector_type
from .registry import detector_id
from .train_config import DetectorTrainConfig
from .train_inputs import check_outputs, load_training_data, resolve_detector_augmentation


def _schedule_text(config: DetectorTrainConfig, phase: str) -> str:
    """A phase's LR schedule as the conventions record it (the default's texts are those from before other schedules
    existed)."""
    decay = "×0.1 at each -rlre epoch" if phase == "pretrain" else "×0.1 after ft_epochs//2 epochs"
    optim = config.optim(phase)
    if config.scheduler == "none" and not optim.per_step:
        return decay + (", stepped per epoch" if phase == "pretrain" else "")
    return f"{decay if config.scheduler == 'none' else config.scheduler}; {describe_schedule(optim)}"


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


class DetectorBank:
    """One detector per layer of ``source``, with the data, output folders and registry of the run.

    Making it checks every input and output (nothing is written when a check fails), then writes
    each layer's ``config.txt`` and ``config.json``. ``source`` runs frozen, in eval mode, under
    ``no_grad`` and only up to the deepest layer.
    """

    def __init__(
        self,
        source: nn.Module,
        layers: Sequence[str],
        config: DetectorTrainConfig,
        *,
        source_path: str | None = None,
        source_type: str | None = None,
        input_shape: Sequence[int] | None = None,
        argv_config: dict[str, Any] | None = None,
        provenance: dict[str, str] | None = None,
    ):
        self.provenance = dict(provenance or {})  # the data_provenance convention (stitchkit.data.provenance)
        config.validate()
        self.config, self.source, self.source_path, self.source_type = config, source, source_path, source_type
        self.layers = list(dict.fromkeys(layers))
        if not self.layers:
            raise StitchkitError("no layers to train detectors for")
        cut = layered(source)
        for layer in self.layers:
            cut.check_layer(layer)
        self._check_datasets()
        self.input_shape = tuple(input_shape or self.info.shape)
        self.device = resolve_device(config.device)
        self.dirs = _layer_dirs(Path(config.save_dir), self.layers)
        self.registry = check_outputs(config, self.dirs)
        self.augmentation = resolve_detector_augmentation(config, recorded_augmentation(source))
        self.data = load_training_data(config, self.info.name, self.ft_info.name, self.input_shape, self.augmentation)

        set_seed(config.seed)
        source.eval().requires_grad_(False)
        source.to(self.device)
        self.source_hash = model_fingerprint(source)
        self.shapes = cut.shapes(self.input_shape, self.layers)
        self.extractor = cut.extractor(self.layers).eval()
        self.model_type = {
            layer: config.model_type or default_detector_type(self.shapes[layer]) for layer in self.layers
        }
        self.keys = {layer: f"d{i}" for i, layer in enumerate(self.layers)}
        self.detectors = nn.ModuleDict(
            {
                self.keys[layer]: build_detector_model(
                    self.model_type[layer],
                    self.shapes[layer],
                    self.info.num_classes,
                    self.input_shape,
                    config.model_options,
                )
                for layer in self.layers
            }
        )
        self.detectors.to(self.device)
        self.say = printer(config.verbose)
        self.pre_logs: dict[str, list[dict[str, float]]] = {layer: [] for layer in self.layers}
        self.ft_logs: dict[str, list[dict[str, float]]] = {layer: [] for layer in self.layers}
        self.seconds = {"pretrain": 0.0, "finetune": 0.0}
        self.val_loader = None
        if self.data.test is not None:
            self.val_loader = make_batches(
                self.data.test,
                config.batch_size,
                shuffle=False,
                workers=config.workers,
                prefetch=config.prefetch,
                device=self.device,
            )
        self._write_configs(argv_config)

    def _check_datasets(self) -> None:
        config = self.config
        self.info = dataset_info(config.dataset or "cifar10")
        self.ft_info = dataset_info(config.ft_id_dataset or self.info.name)
        if self.ft_info.num_classes != self.info.num_classes:
            raise StitchkitError(
                f"the fine-tuning ID set {self.ft_info.name!r} has {self.ft_info.num_classes} classes but the "
                f"detector is "
                f"pre-trained on {self.info.name!r} with {self.info.num_classes}; use an ID set with the same classes"
            )
        self.ood_info = dataset_info(config.ft_ood_dataset)

    def _write_configs(self, argv_config: dict[str, Any] | None) -> None:
        config = self.config
        self.resolved = {
            "command": "detector train",
            "stitchkit_version": __version__,
            "source_model_path": self.source_path,
            "source_model_type": self.source_type,
            "source_model_hash": self.source_hash,
            "layers": self.layers,
            "dataset": self.info.name,
            "ft_id_dataset": self.ft_info.name,
            "input_shape": list(self.input_shape),
            "activation_shapes": {k: list(v) for k, v in self.shapes.items()},
            "model_types": self.model_type,
            "model_specs": {layer: self.detectors[self.keys[layer]].stitchkit_spec for layer in self.layers},
            "settings": asdict(config),
            "device": str(self.device),
            "samples": self.data.counts(),
            "conventions": {
                "energy": "E = −logsumexp(logits), T = 1; higher = more OOD",
                "pretrain_lr_schedule": _schedule_text(config, "pretrain"),
                "finetune_lr_schedule": "×0.1 after ft_epochs//2 iterations (batches; the original's behaviour)"
                if config.ft_lr_per_batch
                else _schedule_text(config, "finetune"),
                "ce_loss": "mean CE over the ID samples",
                **self.augmentation.conventions(),
                **self.provenance,
            },
        }
        ensure_writable_dir(Path(config.save_dir))  # only now: every check has passed
        for layer, d in self.dirs.items():
            ensure_writable_dir(d)
            write_json_atomic(d / "config.txt", argv_config if argv_config is not None else asdict(config))
            write_json_atomic(d / "config.json", {**self.resolved, "layer": layer})

    # -- shared pieces ------------------------------------------------------------------------------
    def activations(self, x: Tensor) -> dict[str, Tensor]:
        """The frozen source's activations of ``x`` at every layer of the bank."""
        with torch.no_grad():
            return self.extractor(x)

    def _tag(self, layer: str) -> str:
        return f"[{layer}] " if len(self.layers) > 1 else ""

    def _ce_step(self, model: nn.Module, batch: Any, dev: torch.device, energy: bool = False):
        """Cross-entropy of every layer's detector; with ``energy`` also the summed energies (validation)."""
        x, y = batch[0].to(dev, non_blocking=True), batch[1].to(dev, non_blocking=True)
        acts = self.activations(x)
        total, stats = 0.0, {}
        for layer in self.layers:
            logits = model[self.keys[layer]](acts[layer])
            ce = F.cross_entropy(logits, y)
            total = total + ce
            stats[f"{layer}|loss"] = float(ce.detach()) * y.shape[0]
            stats[f"{layer}|acc"] = float((logits.detach().argmax(-1) == y).sum())
            if energy:
                stats[f"{layer}|energy"] = float((-torch.logsumexp(logits.detach().float(), dim=-1)).sum())
        return total, y.shape[0], stats

    def _energy_val_step(self, model: nn.Module, batch: Any, dev: torch.device):
        return self._ce_step(model, batch, dev, energy=True)

    # -- phase B: supervised pre-training -----------------------------------------------------------
    def pretrain(self) -> None:
        """Cross-entropy on the source's activations of the (augmented) train split, validated on the test split."""
        config, started = self.config, time.perf_counter()
        if config.epochs > 0:
            train_loader = make_batches(
                self.data.train,
                config.batch_size,
                shuffle=True,
                workers=config.workers,
                prefetch=config.prefetch,
                device=self.device,
            )
            optim_cfg = config.optim("pretrain")
            optimizer = build_optimizer(self.detectors.parameters(), optim_cfg)
            scheduler = build_scheduler(optimizer, optim_cfg, config.epochs, train_loader)
            loop = LoopSettings(
                epochs=config.epochs,
                device=self.device,
                seed=config.seed,
                progress=config.progress,
                verbose=False,
                desc="detector pre-training",
            )
            fit(
                self.detectors,
                train_loader,
                optimizer,
                loop,
                val_loader=self.val_loader,
                scheduler=scheduler,
                step_fn=self._ce_step,
                val_step_fn=self._ce_step,
                on_epoch_end=self._log_pretrain_epoch,
            )
        self.seconds["pretrain"] = time.perf_counter() - started

    def _log_pretrain_epoch(self, log: EpochLog) -> None:
        for layer in self.layers:
            row = {
                "train_acc": log.train.get(f"{layer}|acc", math.nan),
                "train_loss": log.train.get(f"{layer}|loss", math.nan),
                "val_acc": log.val.get(f"{layer}|acc", math.nan) if log.val else math.nan,
                "val_loss": log.val.get(f"{layer}|loss", math.nan) if log.val else math.nan,
                "epoch": log.epoch,
                "lr": log.lr,
                "seconds": log.seconds,
            }
            self.pre_logs[layer].append(row)
            write_csv_atomic(self.dirs[layer] / "training_logs.csv", self.pre_logs[layer])
            if log.epoch % self.config.save_frequency == 0:
                save_state_dict(self.dirs[layer] / f"model_{log.epoch}.pt", self.detectors[self.keys[layer]])
            self.say(
                f"{self._tag(layer)}Epoch #{log.epoch} train loss: {row['train_loss']:.4f}, accuracy: "
                f"{row['train_acc']:.4f}"
            )
            if log.val:
                self.say(
                    f"{self._tag(layer)}Epoch #{log.epoch} val loss: {row['val_loss']:.4f}, accuracy: "
                    f"{row['val_acc']:.4f}"
                )

    # -- phase C: energy fine-tuning with outlier exposure ------------------------------------------
    def finetune(self) -> None:
        """Half in-distribution, half outliers per batch; fresh disjoint samples each epoch."""
        config, started = self.config, time.perf_counter()
        if config.ft_epochs > 0:
            milestone = config.ft_epochs // 2
            optim_cfg = config.optim("finetune")
            batches = paired_batches(config, self.data, self.device)
            optimizer = build_optimizer(self.detectors.parameters(), optim_cfg)
            scheduler = (
                None if config.ft_lr_per_batch else build_scheduler(optimizer, optim_cfg, config.ft_epochs, batches)
            )
            step = FinetuneStep(self, optimizer, milestone)
            loop = LoopSettings(
                epochs=config.ft_epochs,
                device=self.device,
                seed=config.seed + 1,
                progress=config.progress,
                verbose=False,
                desc="energy fine-tuning",
            )
            fit(
                self.detectors,
                batches,
                optimizer,
                loop,
                val_loader=self.val_loader,
                scheduler=scheduler,
                step_fn=step,
                val_step_fn=self._energy_val_step,
                on_epoch_end=self._log_finetune_epoch,
            )
        self.seconds["finetune"] = time.perf_counter() - started

    def _log_finetune_epoch(self, log: EpochLog) -> None:
        share_id = log.train["n_id"]  # fraction of ID samples among all (fit divides sums by the total)
        share_out = 1.0 - share_id
        for layer in self.layers:
            t, v = log.train, log.val or {}
            row = {
                "ft_loss": t[f"{layer}|ft_loss"],
                "ce_loss": t[f"{layer}|ce"] / share_id,
                "train_acc": t[f"{layer}|acc"] / share_id,
                "val_ce_loss": v.get(f"{layer}|loss", math.nan),
                "val_acc": v.get(f"{layer}|acc", math.nan),
                "reg_loss": t[f"{layer}|reg"],
                "mean_energy_in": t[f"{layer}|energy_in"] / share_id,
                "mean_energy_out": t[f"{layer}|energy_out"] / share_out if share_out > 0 else math.nan,
                "val_mean_energy": v.get(f"{layer}|energy", math.nan),
                "epoch": log.epoch,
                "lr": log.lr,
                "seconds": log.seconds,
            }
            self.ft_logs[layer].append(row)
            write_csv_atomic(self.dirs[layer] / "ft_logs.csv", self.ft_logs[layer])
            save_state_dict(self.dirs[layer] / f"ft_model_{log.epoch}.pt", self.detectors[self.keys[layer]])
            self.say(
                f"{self._tag(layer)}FT Epoch #{log.epoch} FT loss: {row['ft_loss']:.4f}, CE Loss: "
                f"{row['ce_loss']:.4f}, accuracy: {row['train_acc']:.4f}, "
                f"energy ID {row['mean_energy_in']:.2f} / outliers {row['mean_energy_out']:.2f}"
            )
            if log.val:
                self.say(
                    f"{self._tag(layer)}FT Epoch #{log.epoch} val loss: {row['val_ce_loss']:.4f}, accuracy: "
                    f"{row['val_acc']:.4f}"
                )

    # -- phase D: publishing ------------------------------------------------------------------------
    def publish(self) -> list[TrainedDetector]:
        """Each detector's ``detector.json`` and, when registering, its registry entry."""
        return [self._publish(layer) for layer in self.layers]

    def _publish(self, layer: str) -> TrainedDetector:
        config = self.config
        # defaults resolved, so that spelling a default out does not change the id
        identity = {
            **config.identity(),
            "model_type": self.model_type[layer],
            "dataset": self.info.name,
            "ft_id_dataset": self.ft_info.name,
            "ft_ood_dataset": self.ood_info.name,
            **self.augmentation.identity(config, self.info.name, self.ft_info.name),
        }
        model = self.detectors[self.keys[layer]].eval().cpu()
        last_pre = self.pre_logs[layer][-1] if self.pre_logs[layer] else {}
        last_ft = self.ft_logs[layer][-1] if self.ft_logs[layer] else {}
        meta = {
            "model_type": self.model_type[layer],
            "source_model_type": self.source_type or getattr(self.source, "stitchkit_spec", {}).get("name"),
            "source_model_path": self.source_path,
            "source_layer": layer,
            "id_dataset": self.ft_info.name,
            "orig_input_shape": list(self.input_shape),
            "required_input_shape": list(self.shapes[layer]),
            "training_loc": str(self.dirs[layer]),
            "source_model_hash": self.source_hash,
            "pretrain_dataset": self.info.name,
            "ood_dataset": config.ft_ood_dataset,
            "num_classes": self.info.num_classes,
            "model_spec": model.stitchkit_spec,
            "training_config": identity,
            "conventions": {
                "score": "energy E = −logsumexp(logits), T = 1; higher = more OOD",
                **self.resolved["conventions"],
            },
            "metrics": {
                "pretrain_val_acc": last_pre.get("val_acc"),
                "finetune_val_acc": last_ft.get("val_acc"),
                "finetune_mean_energy_in": last_ft.get("mean_energy_in"),
                "finetune_mean_energy_out": last_ft.get("mean_energy_out"),
                "pretrain_seconds": self.seconds["pretrain"],
                "finetune_seconds": self.seconds["finetune"],
            },
        }
        det_id, reg_path = None, None
        if self.registry is not None:
            det_id = detector_id(self.source_hash, layer, identity)
            key = self.registry.register({k: v.detach().cpu() for k, v in model.state_dict().items()}, meta, det_id)
            reg_path = str(self.registry.root / key)
            self.say(f"{self._tag(layer)}detector {det_id} registered in {self.registry.meta_path}")
        meta["id"] = det_id
        write_json_atomic(self.dirs[layer] / "detector.json", meta)
        return TrainedDetector(
            layer, model, str(self.dirs[layer]), det_id, reg_path, meta, self.pre_logs[layer], self.ft_logs[layer]
        )
