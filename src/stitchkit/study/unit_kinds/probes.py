"""The ``probes`` unit: linear probes of one network's layers at full and low ranks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ...choices import ALL_LAYERS, AUGMENTATIONS, DEFAULT_AUGMENTATION, LAYER_REQUESTS, SCHEDULE_KEYS
from ...data.augmentation import choice_of
from ...declarations import declare
from ...utils.io import write_npz_atomic
from ..config_keys import COUNT, Key, positive, schedule_keys
from ..params import UnitParams, if_set, present_if
from ..planning import PlanContext, Planned, select
from ..units import Unit, UnitContext
from .shared import load_network, matrix, probe_config, schedule

KIND = "probes"

#: the ``[probes]`` section of the study config (``config_section`` below; :mod:`..config`)
SECTION: dict[str, Key] = {
    "enabled": Key(bool, True, "train linear probes"),
    "layers": Key((str, list), ALL_LAYERS, f"probed layers: {LAYER_REQUESTS}"),
    "ranks": Key(list, [], "low ranks of the representation to probe besides full rank"),
    "epochs": Key(int, 10, "probe epochs", check=positive, check_text="must be ≥ 1"),
    "train_subset": Key((int, type(None)), None, "probes train on a fixed random subset of this many images", **COUNT),
    **schedule_keys(
        "the probes, also those of the sensitivity and specificity tests", "×0.1 after epoch e − 5 when e > 5"
    ),
    "augment": Key(
        str,
        DEFAULT_AUGMENTATION,
        "augmentation of the probes' training images, also the sensitivity and specificity "
        "tests' probes: network (as the probed network was trained), dataset or none (features extracted once: "
        "much faster)",
        choices=tuple(AUGMENTATIONS),
    ),
}


@dataclass(frozen=True)
class ProbesParams(UnitParams):
    kind: ClassVar[str] = KIND
    dataset: str
    seed: int
    layers: list[str]
    ranks: list[int]
    epochs: int
    train_subset: int | None
    scheduler: str = if_set(SECTION, "scheduler")
    schedule_unit: str = if_set(SECTION, "schedule_unit")
    warmup_fraction: float = if_set(SECTION, "warmup_fraction")
    augment: bool = present_if(lambda p: p.augment, False)  # True: the probes train on augmented images


@declare(
    "unit_kind",
    KIND,
    config_section="probes",
    order=6,
    planner="plan",
    record="ProbesParams",
    title="Linear probes",
    help="linear probes of one network's layers at full and low ranks",
    intro="Rows are layers and columns the probe's rank (full: no low-rank bottleneck); colour is the linear probe's "
    "test accuracy, from dark purple (0) to yellow (1).",
)
def run_probes(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    from ...probing.cache import ProbeCache  # deferred: no torch until a unit runs
    from ...probing.model import probe_datasets, probe_model
    from ...ranks import rank_label

    p, run = ProbesParams.from_params(unit.params), ctx.run
    net = ctx.deps[unit.deps[0]]
    model = load_network(net)
    data = probe_datasets(p.dataset, run.data_root, augment=p.augment)
    ranks = [None] + sorted(p.ranks, reverse=True)
    config = probe_config(p.epochs, p.train_subset, p.seed, choice_of(p.augment), schedule(p))
    report = probe_model(
        model,
        p.layers,
        data,
        ranks=ranks,
        config=replace(config, device=run.device, workers=run.workers),
    )
    (ctx.out_dir / "probes.csv").write_text(report.to_csv())
    write_npz_atomic(
        ctx.out_dir / "per_sample.npz", report.per_sample()
    )  # each probe's hits per test image: its accuracy's intervals
    # the sensitivity and specificity tests score representations by these same probes: share them
    cache = ProbeCache(ctx.cache_dir / "probe_cache.json")
    cache.put_results(report.info["model_fingerprint"], p.dataset, report.results, config, net.get("label"))
    cache.save()
    cells = {(r.layer, rank_label(r.rank)): r.val_acc for r in report.results}
    cols = [rank_label(r) for r in ranks]
    return {
        "metrics": {
            "matrices": {
                "probe accuracy": matrix(
                    list(p.layers), cols, cells, "accuracy", [0, 1], row_label="layer", col_label="rank"
                )
            },
            "seconds_probes": report.info["seconds"],
        },
        "artifacts": {"csv": ctx.out_dir / "probes.csv", "per_sample": ctx.out_dir / "per_sample.npz"},
        "model_hashes": {"network": report.info["model_fingerprint"]},
        "conventions": {
            "probe": "global average pool (conv) / CLS (tokens) → linear",
            "trained_on": "augmented training images" if p.augment else "un-augmented training features",
            "augmentation": choice_of(p.augment) + " (probes.augment resolved by the network's record)",
            "low_rank_mode": report.config.get("low_rank_mode"),
        },
    }


def plan(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """Linear probes of each network's layers (``probes.layers``) at each rank."""
    pc = ctx.config["probes"]
    if not pc["enabled"]:
        return []
    probe_layers = select(ctx.net, pc["layers"], "probes.layers")
    units = []
    for n, name in zip(ctx.networks, ctx.names, strict=True):
        params = ProbesParams(
            **ctx.common,
            layers=probe_layers,
            ranks=pc["ranks"],
            epochs=pc["epochs"],
            train_subset=pc["train_subset"],
            augment=ctx.augmented("probes", n.id) is True,
            **{k: pc[k] for k in SCHEDULE_KEYS},
        )
        units.append(Unit(params.kind, params.to_params(), (n.id,), f"probes {name}"))
    return units
