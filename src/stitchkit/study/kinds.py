"""The built-in unit kinds: each is a thin call into the library, writing its artifacts into the
unit's folder and returning metrics, artifacts, conventions and the content hashes of the networks."""

from __future__ import annotations

from typing import Any

import torch

from .units import Unit, UnitContext, register_unit_kind


def load_network(dep: dict[str, Any], device: str | torch.device = "cpu"):
    """The model of a finished ``train`` or ``network`` unit."""
    from ..models.checkpoint import load_model

    model, _ = load_model(dep["artifacts"]["checkpoint"])
    return model.to(device).eval()


def _fingerprint(path: str) -> str:
    from ..activations import model_fingerprint
    from ..models.checkpoint import load_model

    model, _ = load_model(path)
    return model_fingerprint(model)


@register_unit_kind("train", "train a base network for one seed")
def run_train(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    from ..training.base import TrainSettings, train_model
    from ..training.optim import OptimConfig

    p = unit.params
    out = ctx.out_dir / "network"
    settings = TrainSettings(
        model=p["model"], save_dir=str(out), dataset=p["dataset"], data_root=ctx.settings.get("data_root"), epochs=p["epochs"],
        batch_size=p["batch_size"],
        optim=OptimConfig(optimizer=p["optimizer"], lr=p["lr"], weight_decay=p["weight_decay"], momentum=p["momentum"],
                          scheduler=p["scheduler"], milestones=list(p["milestones"])),
        seed=p["seed"], workers=ctx.settings.get("workers", 0), save_frequency=max(1, p["epochs"]), device=ctx.settings.get("device", "auto"),
        model_options=dict(p["options"]), train_subset=p["train_subset"], augment=p["augment"],
        progress=ctx.settings.get("progress", False), verbose=False,
    )
    result = train_model(settings)
    checkpoint = out / "final.pt"
    return {
        "metrics": result["metrics"],
        "artifacts": {"checkpoint": checkpoint, "logs": out / "training_logs.csv"},
        "model_hashes": {"network": _fingerprint(str(checkpoint))},
        "conventions": {"lr_schedule": "stepped per epoch"},
    }


@register_unit_kind("network", "use a given checkpoint: record its identity and clean accuracy")
def run_network(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    import shutil

    from ..training.base import evaluate_model

    p = unit.params
    target = ctx.out_dir / "final.pt"
    shutil.copyfile(p["path"], target)  # the study keeps the exact file it measured
    stats = evaluate_model(str(target), dataset=p["dataset"], data_root=ctx.settings.get("data_root"), device=ctx.settings.get("device", "auto"),
                           workers=ctx.settings.get("workers", 0), progress=ctx.settings.get("progress", False), batch_size=256)
    return {
        "metrics": {"test_acc": stats["acc"], "test_top5": stats.get("top5"), "test_loss": stats["loss"]},
        "artifacts": {"checkpoint": target},
        "model_hashes": {"network": _fingerprint(str(target))},
    }
