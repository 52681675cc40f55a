"""The ``train`` unit: train a base network for one seed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ...declarations import declare
from ..config_sections import LEADING_SECTIONS
from ..params import UnitParams, if_set
from ..planning import PlanContext, Planned
from ..units import Unit, UnitContext
from .shared import NETWORK_EVAL_BATCH, fingerprint, schedule, write_hits

KIND = "train"


@dataclass(frozen=True)
class TrainParams(UnitParams):
    kind: ClassVar[str] = KIND
    model: str
    options: dict[str, Any]
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    momentum: float
    scheduler: str
    milestones: list[int]
    augment: bool
    train_subset: int | None
    dataset: str
    seed: int
    schedule_unit: str = if_set(LEADING_SECTIONS["networks"], "schedule_unit")
    warmup_fraction: float = if_set(LEADING_SECTIONS["networks"], "warmup_fraction")


@declare(
    "unit_kind",
    KIND,
    order=1,
    planner="plan",
    record="TrainParams",
    network=True,
    title="Base networks",
    help="train a base network for one seed",
)
def run_train(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    from ...training.base import TrainSettings, evaluate_model, train_model  # deferred: no torch until a unit runs
    from ...training.optim import OptimConfig, describe_schedule

    p = TrainParams.from_params(unit.params)
    out = ctx.out_dir / "network"
    settings = TrainSettings(
        model=p.model,
        save_dir=str(out),
        dataset=p.dataset,
        epochs=p.epochs,
        batch_size=p.batch_size,
        optim=OptimConfig(
            optimizer=p.optimizer,
            lr=p.lr,
            weight_decay=p.weight_decay,
            momentum=p.momentum,
            milestones=list(p.milestones),
            **schedule(p),
        ),
        seed=p.seed,
        save_frequency=max(1, p.epochs),
        model_options=dict(p.options),
        train_subset=p.train_subset,
        augment=p.augment,
        **vars(ctx.run),
    )
    result = train_model(settings)
    checkpoint = out / "final.pt"
    # the test accuracy's per-image hits (issue 19): one more pass over the test split, as the network kind makes
    clean = evaluate_model(
        str(checkpoint),
        run=replace(ctx.run, progress=False),
        dataset=p.dataset,
        batch_size=NETWORK_EVAL_BATCH,
        keep_hits=True,
    )
    return {
        "metrics": result["metrics"],
        "artifacts": {
            "checkpoint": checkpoint,
            "logs": out / "training_logs.csv",
            "per_sample": write_hits(ctx, clean["hits"]),
        },
        "model_hashes": {"network": fingerprint(str(checkpoint))},
        "conventions": {"lr_schedule": describe_schedule(settings.optim)},
    }


#: the ``[networks]`` keys a ``train`` unit takes as they are
TRAIN_KEYS = (
    "model",
    "options",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "momentum",
    "scheduler",
    "milestones",
    "augment",
    "train_subset",
    "schedule_unit",
    "warmup_fraction",
)


def plan(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """A ``train`` unit per seed, unless checkpoints are given (the ``network`` kind's); each network's
    augmentation (``networks.augment``) goes into ``ctx.augment_records``."""
    nets_cfg = ctx.config["networks"]
    if nets_cfg["checkpoints"]:
        return []
    networks = []
    names = nets_cfg["names"] or [f"{nets_cfg['model']} s{seed}" for seed in nets_cfg["seeds"]]
    for seed, name in zip(nets_cfg["seeds"], names):
        params = TrainParams(**{k: nets_cfg[k] for k in TRAIN_KEYS}, dataset=ctx.config["study"]["dataset"], seed=seed)
        networks.append(Unit(params.kind, params.to_params(), (), f"train {name}"))
        ctx.augment_records[networks[-1].id] = params.augment
    return networks
