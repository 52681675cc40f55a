"""The ``stitch`` unit: fit and evaluate a layer grid of stitches between two networks (DM, TLM or TLM from DM)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...choices import AUGMENTATIONS, DEFAULT_AUGMENTATION, SCHEDULE_KEYS
from ...data.augmentation import choice_of
from ...declarations import declare
from ...stitch_methods import DEFAULT_DM_SOLVER, DM_SOLVERS, METHOD_INIT, METHOD_TITLES, METHODS, METHODS_HELP
from ...utils.io import write_npz_atomic
from ..config_keys import COUNT, PAIRINGS, STITCH_TYPES, Key, non_negative, positive, schedule_keys
from ..params import UnitParams, if_set, present_if, schema_default
from ..planning import PlanContext, Planned, pairs
from ..resampling import FIT_RESIDUAL
from ..units import Unit, UnitContext
from .shared import matrix, schedule

KIND = "stitch"

#: the ``[stitching]`` section of the study config (``config_section`` below; :mod:`..config`)
SECTION: dict[str, Key] = {
    "enabled": Key(bool, True, "run stitching grids"),
    "methods": Key(list, ["dm", "tlm"], METHODS_HELP, choices=METHODS),
    "pairs": Key(
        str,
        "reference",
        "network pairs: reference (first → each other), first (first → second only), all (ordered pairs), self, "
        "reference_and_self, first_and_self (first → itself and → second)",
        choices=PAIRINGS,
    ),
    "type": Key(str, "auto", "stitching layer type", choices=STITCH_TYPES),
    "fit_samples": Key(
        int, 100, "K, training images of the direct-matching fit", check=positive, check_text="must be ≥ 1"
    ),
    "epochs": Key(int, 30, "TLM epochs", check=positive, check_text="must be ≥ 1"),
    "batch_size": Key(int, 256, "TLM batch size", check=positive, check_text="must be ≥ 1"),
    "lr": Key((int, float), 1e-3, "TLM learning rate", check=positive, check_text="must be > 0"),
    "weight_decay": Key((int, float), 1e-5, "TLM weight decay", check=non_negative, check_text="must be ≥ 0"),
    "train_subset": Key((int, type(None)), None, "TLM trains on a fixed random subset of this many images", **COUNT),
    **schedule_keys("TLM", "constant"),
    "eval_samples": Key((int, type(None)), None, "evaluate on the first N test images (default all)", **COUNT),
    "amp": Key(
        bool,
        False,
        "bf16 autocast of donors and stitching layers during TLM training on CUDA (changes the numbers slightly; "
        "recorded)",
    ),
    "dm_solver": Key(
        str,
        DEFAULT_DM_SOLVER,
        "direct-matching solve of dm and tlm_from_dm: stitchkit (float64 least "
        "squares) or original (its float32 pinv with torch's default cutoff on the fit images in one batch)",
        choices=DM_SOLVERS,
    ),
    "augment": Key(
        str,
        DEFAULT_AUGMENTATION,
        "augmentation of the images TLM and TLM from DM train on (also the tests' tlm_accuracy): "
        "network = as the end network was trained (its checkpoint's record, networks.augment for trained ones; "
        "the dataset's default when it records nothing), dataset = the dataset's default, none",
        choices=tuple(AUGMENTATIONS),
    ),
}


def _trains(p: StitchParams) -> bool:
    return p.method != "dm"


@dataclass(frozen=True)
class StitchParams(UnitParams):
    kind: ClassVar[str] = KIND
    dataset: str
    seed: int
    method: str
    front_layers: list[str]
    end_layers: list[str]
    type: str
    fit_samples: int
    eval_samples: int | None
    # the training options of TLM and TLM from DM (a DM unit trains no epochs and has none of them)
    epochs: int = present_if(_trains, 0)
    batch_size: int = present_if(_trains, schema_default(SECTION, "batch_size"))
    lr: float = present_if(_trains, schema_default(SECTION, "lr"))
    weight_decay: float = present_if(_trains, schema_default(SECTION, "weight_decay"))
    train_subset: int | None = present_if(_trains, schema_default(SECTION, "train_subset"))
    # only when set / not the default, so that the units of existing studies keep their identities
    amp: bool = present_if(lambda p: _trains(p) and p.amp, schema_default(SECTION, "amp"))
    dm_solver: str = present_if(
        lambda p: p.method != "tlm" and p.dm_solver != schema_default(SECTION, "dm_solver"),
        schema_default(SECTION, "dm_solver"),
    )
    scheduler: str = if_set(SECTION, "scheduler", _trains)
    schedule_unit: str = if_set(SECTION, "schedule_unit", _trains)
    warmup_fraction: float = if_set(SECTION, "warmup_fraction", _trains)
    # False: TLM trains on un-augmented images where the dataset has an augmentation (e.g. networks trained without)
    augment: bool = present_if(lambda p: _trains(p) and not p.augment, True)


@declare(
    "unit_kind",
    KIND,
    config_section="stitching",
    order=3,
    planner="plan",
    record="StitchParams",
    title="Stitching",
    help="fit and evaluate a layer grid of stitches between two networks (DM, TLM or TLM from DM)",
    intro="Each heatmap is one stitch grid: rows are the front network's layers where it is cut, columns the end "
    "network's layers "
    "where the stitched activations enter; the accuracy heatmaps run from dark purple (0) to yellow (1), the "
    "residuals from "
    "yellow (small) to dark purple (large), and beside each accuracy heatmap its relative accuracy (the stitched "
    "accuracy "
    "divided by the end network's own, as the findings use it): white is 1, blue below, red above; grey panels are the "
    "widths of the confidence intervals.",
)
def run_stitch(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    from ...stitching.grid import GridOptions, stitch_grid  # deferred: no torch until a unit runs
    from ...stitching.per_sample import PER_SAMPLE_FILE, grid_arrays
    from ...stitching.settings import StitchSettings
    from ...training.optim import OptimConfig

    p = StitchParams.from_params(unit.params)
    front, end = ctx.deps[unit.deps[0]], ctx.deps[unit.deps[1]]
    method = p.method
    settings = StitchSettings(
        stitching_type=p.type,
        init=METHOD_INIT[method],
        epochs=p.epochs,
        batch_size=p.batch_size,
        optim=OptimConfig(lr=p.lr, weight_decay=p.weight_decay, **schedule(p)),
        seed=p.seed,
        fit_samples=p.fit_samples,
        test_samples=p.eval_samples,
        train_samples=p.train_subset,
        dataset=p.dataset,
        cache_dir=str(ctx.cache_dir / "stitch" / unit.id),
        amp=p.amp,
        data_path=ctx.data_path,
        dm_solver=p.dm_solver,
        group_size=ctx.group_size,
        augment=choice_of(p.augment),
        activation_cache=str(ctx.cache_dir / "activations"),
        **vars(ctx.run),
    )
    runs = ctx.out_dir / "runs"
    results = stitch_grid(
        front["artifacts"]["checkpoint"],
        end["artifacts"]["checkpoint"],
        p.front_layers,
        p.end_layers,
        settings,
        GridOptions(command=f"stitchkit study ({unit.label})", save_dir_label="runs"),
        save_dir=runs,
    )
    rows, cols = list(p.front_layers), list(p.end_layers)
    acc = {(r.front_layer, r.end_layer): r.accuracy for r in results}
    res = {(r.front_layer, r.end_layer): r.residual for r in results}
    fit = {(r.front_layer, r.end_layer): r.fit_residual for r in results}
    name = METHOD_TITLES[method]
    matrices = {
        f"{name} accuracy": matrix(rows, cols, acc, "accuracy", [0, 1]),
        f"{name} residual (test, pooled)": matrix(rows, cols, res, "distance", [0, None]),
        f"{name} {FIT_RESIDUAL}": matrix(rows, cols, fit, "distance", [0, None]),
    }
    first = results[0]
    # every cell's per-image statistics (the (F, E, N) contract of issue 19): intervals come from them later
    per_sample = ctx.out_dir / PER_SAMPLE_FILE
    write_npz_atomic(
        per_sample,
        grid_arrays({(r.front_layer, r.end_layer): r.samples for r in results if r.samples is not None}, rows, cols),
    )
    return {
        "metrics": {
            "matrices": matrices,
            "front_accuracy": first.front_accuracy,
            "end_accuracy": first.end_accuracy,
            "pairs": len(results),
            "run_names": {f"{r.front_layer}|{r.end_layer}": r.run_name for r in results},
            "mean_accuracy": sum(acc.values()) / len(acc),
        },
        "artifacts": {"runs": runs, "per_sample": per_sample},
        "model_hashes": {"front": first.front.get("fingerprint"), "end": first.end.get("fingerprint")},
        "conventions": dict(first.conventions),
    }


def plan(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """One layer grid per (front network, end network, method)."""
    st = ctx.config["stitching"]
    if not st["enabled"]:
        return []
    units = []
    for i, j in pairs(len(ctx.networks), st["pairs"]):
        for method in st["methods"]:
            training = (
                {}
                if method == "dm"
                else {
                    k: st[k]
                    for k in ("epochs", "batch_size", "lr", "weight_decay", "train_subset", "amp", *SCHEDULE_KEYS)
                }
            )
            params = StitchParams(
                **ctx.common,
                method=method,
                front_layers=ctx.front_layers,
                end_layers=ctx.end_layers,
                type=st["type"],
                fit_samples=st["fit_samples"],
                eval_samples=st["eval_samples"],
                dm_solver=st["dm_solver"],
                augment=ctx.augmented("stitching", ctx.networks[j].id) is not False,
                **training,
            )
            units.append(
                Unit(
                    params.kind,
                    params.to_params(),
                    (ctx.networks[i].id, ctx.networks[j].id),
                    f"stitch {method} {ctx.names[i]}→{ctx.names[j]}",
                )
            )
    return units
