"""Training and evaluating base models: what ``stitchkit train`` and ``stitchkit eval`` call.

Outputs of a training run in ``save_dir`` (the original's files first):

* ``model_<epoch>.pt`` every ``save_frequency`` epochs — a bare state_dict, readable by the original's
  loaders; stitchkit reads it by path alone thanks to ``config.json``;
* ``training_logs.csv`` — ``train_acc, train_loss, val_acc, val_loss`` (+ top-5, lr, seconds), rewritten
  after every epoch;
* ``config.txt`` (the arguments as JSON, like the original) and ``config.json`` (the full, resolved
  configuration with the model spec and stitchkit version), both written before training starts;
* ``last.pt`` — a self-describing checkpoint with optimizer and scheduler state, for ``--resume``;
* ``final.pt`` — the self-describing final checkpoint, and ``metrics.json`` with the final numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler

from .. import __version__
from ..data import dataset_info, get_dataset, train_sampler_for
from ..data.loading import BatchPath, make_batches, sample_subset
from ..data.provenance import note_provenance
from ..errors import StitchkitError
from ..models.checkpoint import (
    RUN_CONFIG,
    save_checkpoint,
    save_state_dict,
    unwrap,
)
from ..models.loading import load_for_dataset
from ..utils.device import resolve_device
from ..utils.io import check_writable_dir, ensure_writable_dir, write_csv_atomic, write_json_atomic
from ..utils.numbers import check_seed
from ..utils.run_options import RunOptions
from ..utils.seed import set_seed
from .distributed import DistInfo, barrier, init_distributed, local_device
from .loop import EpochLog, LoopSettings, classification_step, evaluate, fit
from .optim import OptimConfig, build_optimizer, build_scheduler, describe_schedule
from .resume import training_start


@dataclass
class TrainSettings(RunOptions):
    """A base-model training run. Defaults are the original's ``exec_train.py``."""

    model: str
    save_dir: str
    dataset: str = "cifar10"
    epochs: int = 100
    batch_size: int = 64
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    grad_clip: float | None = None
    workers: int = field(default=1, kw_only=True)  # RunOptions, with the original's default
    save_frequency: int = 1
    amp: bool = False
    resume: str | None = None
    #: resume even from a checkpoint whose model, dataset, seed or recipe differ (recorded in config.json)
    force_resume: bool = False
    overwrite: bool = False
    model_options: dict[str, Any] = field(default_factory=dict)
    train_subset: int | None = None  # train on a fixed random subset of this many images
    augment: bool = True  # the dataset's default training augmentation
    data_path: str = "auto"  # how batches are made: data.loading.make_batches (the same batches on every path)
    download: bool = True

    def validate(self) -> TrainSettings:
        check_seed(self.seed)
        self.optim.validate()
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (
                self.save_frequency >= 1,
                f"save frequency (-sf) must be at least 1 (the original's 0 crashed), got {self.save_frequency}",
            ),
            (
                self.grad_clip is None or self.grad_clip > 0,
                f"gradient clipping threshold must be positive, got {self.grad_clip}",
            ),
            (
                self.train_subset is None or self.train_subset >= 1,
                f"training subset must be at least 1 image, got {self.train_subset}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise StitchkitError(message)
        self.check_run_options()
        return self


class _ShardSampler(Sampler[int]):
    """Every ``world``-th index from ``rank``, unshuffled and unpadded (exact distributed evaluation)."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


_write_csv = write_csv_atomic  # training_logs.csv of every trainer (base models, detectors, stitches)


def _check_output(settings: TrainSettings, save_dir: Path, dist_info: DistInfo) -> None:
    """Every check of the output folder before anything is written: a refused run leaves no folder behind."""
    if not dist_info.is_main:
        return
    check_writable_dir(save_dir)
    if (
        settings.resume is None
        and not settings.overwrite
        and ((save_dir / "final.pt").exists() or (save_dir / "last.pt").exists())
    ):
        raise StitchkitError(
            f"{str(save_dir)!r} already holds a training run; continue it with --resume {save_dir / 'last.pt'}, "
            "choose another -dir, or pass --overwrite"
        )


def _loaders(settings: TrainSettings, info: Any, dist_info: DistInfo, device: torch.device) -> tuple[Any, Any, Any]:
    """The training subset and the train and test batches (sharded when distributed)."""
    full_train_set = get_dataset(
        settings.dataset, "train", root=settings.data_root, augment=settings.augment, download=settings.download
    )
    train_set = sample_subset(
        full_train_set, settings.train_subset, settings.seed, what=f"--train-subset: the train split of {info.name}"
    )
    test_set = get_dataset(settings.dataset, "test", root=settings.data_root, download=settings.download)
    if dist_info.enabled:
        train_sampler: Sampler | None = torch.utils.data.distributed.DistributedSampler(
            train_set, dist_info.world_size, dist_info.rank, shuffle=True, seed=settings.seed
        )
        test_sampler: Sampler | None = _ShardSampler(len(test_set), dist_info.rank, dist_info.world_size)
    else:
        train_sampler = train_sampler_for(settings.dataset, train_set, generator=None)
        test_sampler = None
    batches = dict(
        workers=settings.workers,
        prefetch=settings.prefetch,
        device=device,
        path=BatchPath(data_path=settings.data_path),
    )
    train_loader = make_batches(train_set, settings.batch_size, shuffle=True, sampler=train_sampler, **batches)
    test_loader = make_batches(test_set, settings.batch_size, shuffle=False, sampler=test_sampler, **batches)
    return train_set, train_loader, test_loader


def _run_config(
    settings: TrainSettings,
    info: Any,
    spec: dict[str, Any],
    device: torch.device,
    dist_info: DistInfo,
    train_samples: int,
    mismatches: list[str],
) -> dict[str, Any]:
    """``config.json``: the full, resolved configuration of the run."""
    return {
        "command": "train",
        "stitchkit_version": __version__,
        "model": settings.model,
        "model_spec": spec,
        "dataset": info.name,
        "input_shape": list(info.shape),
        "settings": asdict(settings),
        "device": str(device),
        "world_size": dist_info.world_size,
        "train_samples": train_samples,
        "resumed_from": str(settings.resume) if settings.resume else None,
        "resume_mismatches": mismatches,
        "conventions": {
            "lr_schedule": describe_schedule(settings.optim),
            "weight_decay": "L2 added to the gradient" if settings.optim.optimizer != "adamw" else "decoupled",
        },
    }


def _final_metrics(
    settings: TrainSettings, history: list[EpochLog], train_samples: int, world_size: int, elapsed: float
) -> dict[str, Any]:
    final = history[-1]
    return {
        "test_acc": final.val["acc"] if final.val else math.nan,
        "test_top5": final.val.get("top5") if final.val else None,
        "test_loss": final.val["loss"] if final.val else math.nan,
        "test_samples": final.val["n"] if final.val else 0,
        "train_samples": train_samples,
        "world_size": world_size,
        "train_acc": final.train.get("acc"),
        "train_loss": final.train["loss"],
        "epochs": settings.epochs,
        "seconds": elapsed,
        "seconds_per_epoch": [h.seconds for h in history],
    }


def _for_training(model: torch.nn.Module, dist_info: DistInfo, device: torch.device) -> torch.nn.Module:
    """The module the loop trains: ``model`` itself, or wrapped in DistributedDataParallel when distributed."""
    if not dist_info.enabled:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def _restore_optimizer_state(optimizer: Any, scheduler: Any, checkpoint: Any) -> None:
    """A resumed run's optimizer and (when saved) scheduler state, from its ``last.pt`` (``None``: a fresh run)."""
    if checkpoint is None:
        return
    optimizer.load_state_dict(checkpoint.extra["optimizer"])
    if "scheduler" in checkpoint.extra:
        scheduler.load_state_dict(dict(checkpoint.extra["scheduler"]))


def _epoch_logger(
    settings: TrainSettings,
    info: Any,
    save_dir: Path,
    run_config: dict[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    history_rows: list[dict[str, float]],
    is_main: bool,
) -> Callable[[EpochLog], None]:
    """The loop's end-of-epoch callback: the logs, the original's state_dicts and ``last.pt`` (for --resume);
    only the main process writes."""

    def on_epoch_end(log: EpochLog) -> None:
        history_rows.append(log.row())
        if not is_main:
            return
        _write_csv(save_dir / "training_logs.csv", history_rows)
        if log.epoch % settings.save_frequency == 0:
            save_state_dict(save_dir / f"model_{log.epoch}.pt", model)
        save_checkpoint(
            save_dir / "last.pt",
            model,
            dataset=info.name,
            input_shape=info.shape,
            training=run_config["settings"],
            epoch=log.epoch,
            metrics=log.row(),
            resume={"optimizer": optimizer, "scheduler": scheduler},
        )

    return on_epoch_end


def _train_loop_settings(settings: TrainSettings, device: torch.device, start_epoch: int, main: bool) -> LoopSettings:
    """The training loop's settings (progress and messages from the main process only)."""
    return LoopSettings(
        epochs=settings.epochs,
        device=device,
        seed=settings.seed,
        grad_clip=settings.grad_clip,
        amp=settings.amp and device.type == "cuda",
        start_epoch=start_epoch,
        progress=settings.progress and main,
        verbose=settings.verbose and main,
        desc=f"train {settings.model}",
    )


def train_model(settings: TrainSettings, argv_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train a base model; returns the final metrics and output paths (see the module docstring)."""
    settings.validate()
    info = dataset_info(settings.dataset)
    requested = resolve_device(settings.device)
    dist_info: DistInfo = init_distributed(requested.type)
    device = local_device(requested, dist_info)
    save_dir = Path(settings.save_dir)
    _check_output(settings, save_dir, dist_info)
    set_seed(settings.seed)

    start = training_start(settings, info, save_dir)
    model, history_rows = start.model, start.history_rows
    model.to(device)
    train_module = _for_training(model, dist_info, device)
    optimizer = build_optimizer(model.parameters(), settings.optim)
    train_set, train_loader, test_loader = _loaders(settings, info, dist_info, device)
    scheduler = build_scheduler(
        optimizer, settings.optim, settings.epochs, train_loader
    )  # a per-step one counts the batches
    _restore_optimizer_state(optimizer, scheduler, start.checkpoint)
    run_config = _run_config(settings, info, model.stitchkit_spec, device, dist_info, len(train_set), start.mismatches)
    new_folder = not save_dir.exists()
    if dist_info.is_main:
        ensure_writable_dir(save_dir)
        write_json_atomic(save_dir / RUN_CONFIG, run_config)
        write_json_atomic(save_dir / "config.txt", argv_config if argv_config is not None else asdict(settings))
    on_epoch_end = _epoch_logger(
        settings,
        info,
        save_dir,
        run_config,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        history_rows=history_rows,
        is_main=dist_info.is_main,
    )

    step = classification_step(topk=(1, 5))
    started = time.perf_counter()
    try:
        loop = _train_loop_settings(settings, device, start.epoch, dist_info.is_main)
        history = fit(
            train_module,
            train_loader,
            optimizer,
            loop,
            val_loader=test_loader,
            scheduler=scheduler,
            step_fn=step,
            val_step_fn=step,
            on_epoch_end=on_epoch_end,
        )
    except BaseException:
        if dist_info.is_main and start.checkpoint is None and not (save_dir / "last.pt").exists():
            _remove_unstarted_run(save_dir, new_folder)
        raise
    metrics = _final_metrics(settings, history, len(train_set), dist_info.world_size, time.perf_counter() - started)
    result = {"metrics": metrics, "save_dir": str(save_dir), "final": str(save_dir / "final.pt")}
    if dist_info.is_main:
        save_checkpoint(
            save_dir / "final.pt",
            unwrap(train_module),
            dataset=info.name,
            input_shape=info.shape,
            training=run_config["settings"],
            epoch=settings.epochs,
            metrics=metrics,
        )
        write_json_atomic(save_dir / "metrics.json", metrics)
    barrier()
    return result


def _remove_unstarted_run(save_dir: Path, new_folder: bool) -> None:
    """A run that failed before its first epoch finished (a damaged image, a bad batch, Ctrl-C) leaves
    nothing to resume: its config files go, and its folder too when this run made it."""
    for name in (RUN_CONFIG, "config.txt"):
        (save_dir / name).unlink(missing_ok=True)
    if new_folder and save_dir.is_dir() and not any(save_dir.iterdir()):
        save_dir.rmdir()


def evaluate_model(
    model_path: str,
    model_name: str | None = None,
    run: RunOptions | None = None,
    *,
    dataset: str | None = None,
    batch_size: int = 64,
    model_options: dict[str, Any] | None = None,
    keep_hits: bool = False,
) -> dict[str, Any]:
    """Clean accuracy (and top-5, loss) of a checkpoint on a dataset's test split; with ``keep_hits``, also
    ``hits``: each test image's top-1 hit (uint8, 1 = right, in the split's order; their mean is ``acc``).
    ``run`` says where the data are, which device computes and how batches load (:class:`RunOptions`)."""
    run = run or RunOptions()
    data_root, device, workers, prefetch, progress = run.data_root, run.device, run.workers, run.prefetch, run.progress
    if batch_size < 1:
        raise StitchkitError(f"batch size must be at least 1, got {batch_size}")
    model, ckpt, info = load_for_dataset(model_path, model_name, dataset=dataset, model_options=model_options)
    conventions = note_provenance({"": ckpt.dataset}, info.name)
    spec = model.stitchkit_spec
    dev = resolve_device(device)
    model.to(dev)
    test_set = get_dataset(info.name, "test", root=data_root)
    loader = make_batches(test_set, batch_size, shuffle=False, workers=workers, prefetch=prefetch, device=dev)
    recorded: list[torch.Tensor] | None = [] if keep_hits else None
    stats = evaluate(
        model, loader, dev, step_fn=classification_step(topk=(1, 5), record=recorded), progress=progress, desc="eval"
    )
    hits = {"hits": torch.cat(recorded).to(torch.uint8).numpy()} if recorded else {}
    return {
        "model": str(model_path),
        "model_name": spec["name"],
        "dataset": info.name,
        "trained_on": ckpt.dataset,
        "n": len(test_set),
        **stats,
        **hits,
        **({"conventions": conventions} if conventions else {}),
    }
