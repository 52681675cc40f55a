"""The ``detectors`` unit: energy OOD detectors (representation classifiers, outlier exposure) for every end
layer of a network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...choices import SCHEDULE_KEYS
from ...data.augmentation import choice_of
from ...declarations import declare
from ..params import UnitParams, if_set, present_if
from ..planning import PlanContext, Planned
from ..units import Unit, UnitContext
from .ood import SECTION as OOD_SECTION
from .ood import tested_stitches
from .shared import schedule

KIND = "detectors"


@dataclass(frozen=True)
class DetectorsParams(UnitParams):
    kind: ClassVar[str] = KIND
    dataset: str
    seed: int
    detector: str
    options: dict[str, Any]
    layers: list[str]
    outliers: str
    finetune_id: str | None
    pretrain_epochs: int
    finetune_epochs: int
    batch_size: int
    train_subset: int | None
    scheduler: str = if_set(OOD_SECTION, "scheduler")
    schedule_unit: str = if_set(OOD_SECTION, "schedule_unit")
    warmup_fraction: float = if_set(OOD_SECTION, "warmup_fraction")
    # pre-training on un-augmented images (False) / the fine-tuning ID half on augmented ones (True)
    augment: bool = present_if(lambda p: not p.augment, True)
    finetune_id_augment: bool = present_if(lambda p: p.finetune_id_augment, False)


@declare(
    "unit_kind",
    KIND,
    order=9,
    plan_order=3.5,
    planner="plan",
    record="DetectorsParams",
    title="OOD detectors",
    help="energy OOD detectors (representation classifiers, outlier exposure) for every end layer of a network",
)
def run_detectors(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    from ...ood.train import DetectorTrainConfig, train_detectors_for_checkpoint  # deferred: no torch until a unit runs
    from ...training.optim import describe_schedule

    p = DetectorsParams.from_params(unit.params)
    net = ctx.deps[unit.deps[0]]
    registry = ctx.out_dir / "registry"
    config = DetectorTrainConfig(
        save_dir=str(ctx.out_dir / "training"),
        model_type=p.detector,
        model_options=dict(p.options),
        dataset=p.dataset,
        epochs=p.pretrain_epochs,
        batch_size=p.batch_size,
        seed=p.seed,
        ft_id_dataset=p.finetune_id,
        ft_ood_dataset=p.outliers,
        ft_epochs=p.finetune_epochs,
        train_subset=p.train_subset,
        ft_samples=p.train_subset,
        val_subset=0,
        final_save_dir=str(registry),
        augment=choice_of(p.augment),
        ft_id_augment=p.finetune_id_augment,
        **schedule(p),
        **vars(ctx.run),
    )
    trained = train_detectors_for_checkpoint(net["artifacts"]["checkpoint"], None, list(p.layers), config)
    return {
        "metrics": {"layers": list(p.layers), "detectors": len(trained)},
        "artifacts": {"registry": registry},
        "model_hashes": {"network": net["model_hashes"].get("network")},
        "conventions": {
            "loss": "CE + 0.1·(mean relu(E_in − m_in)² + mean relu(m_out − E_out)²), m_in −25, m_out −7",
            "lr_schedule": describe_schedule(config.optim("pretrain")),
            **{k: v for k, v in trained[0].meta["conventions"].items() if k.endswith("augmentation")},
        },
    }


def plan(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """Energy detectors (``ood.energy``) for every end network of a stitch grid the OOD test looks at,
    in the networks' order (planned after the stitches, before the OOD tests: ``plan_order``)."""
    oc = ctx.config["ood"]
    stitches = tested_stitches(ctx, planned)
    if not oc["energy"]:
        return []
    units = []
    for end_id in sorted({u.deps[1] for u in stitches}, key=[n.id for n in ctx.networks].index):
        params = DetectorsParams(
            **ctx.common,
            detector=oc["detector"],
            options=oc["detector_options"],
            layers=ctx.end_layers,
            outliers=oc["outliers"],
            finetune_id=oc["finetune_id"],
            pretrain_epochs=oc["pretrain_epochs"],
            finetune_epochs=oc["finetune_epochs"],
            batch_size=oc["batch_size"],
            train_subset=oc["train_subset"],
            **{k: oc[k] for k in SCHEDULE_KEYS},
            augment=ctx.augmented("ood", end_id) is not False,
            finetune_id_augment=ctx.augmented("ood", end_id, oc["finetune_id"]) is True,
        )
        label = next(n.label for n in ctx.networks if n.id == end_id).split(" ", 1)[1]
        units.append(Unit(params.kind, params.to_params(), (end_id,), f"detectors {label}"))
    return units
