"""What several unit kinds share: how a unit loads a network, its LR schedule options, its hits and
matrices, and the probes and ranking tests of Ding et al."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...choices import SCHEDULE_KEYS
from ..config_keys import schedule_keys
from ..params import UnitParams, if_set, present_if
from ..planning import PlanContext, Planned
from ..units import Unit, UnitContext, network_kinds

#: the probes' schedule keys, whose defaults the sensitivity and specificity tests' probe_* fields compare with
#: (every section's schedule keys share their defaults; the probes kind's own section is its SECTION)
PROBE_SCHEDULE = schedule_keys("the probes", "the probes kind's")

#: batch size of a given network's clean-accuracy pass (no effect on the result)
NETWORK_EVAL_BATCH = 256


def schedule(p: Any, prefix: str = "") -> dict[str, Any]:
    """A unit's LR schedule options (:data:`~stitchkit.choices.SCHEDULE_KEYS`, stored as ``prefix + key``), as the
    library's configs name them."""
    return {key: getattr(p, prefix + key) for key in SCHEDULE_KEYS}


def load_network(dep: dict[str, Any], device: Any = "cpu"):
    """The model of a finished ``train`` or ``network`` unit."""
    from ...models.loading import load_model  # deferred: the study package imports no torch until a unit runs

    model, _ = load_model(dep["artifacts"]["checkpoint"])
    return model.to(device).eval()


def fingerprint(path: str) -> str:
    """The content hash of a checkpoint's network."""
    from ...activations import model_fingerprint  # deferred: the study package imports no torch until a unit runs
    from ...models.loading import load_model

    model, _ = load_model(path)
    return model_fingerprint(model)


def write_hits(ctx: UnitContext, hits) -> Any:
    """A network's clean hits per test image (``hits``, ``images``): its test accuracy's intervals come from them."""
    import numpy as np  # deferred: the study package imports no torch until a unit runs

    from ...stitching.per_sample import PER_SAMPLE_FILE
    from ...utils.io import write_npz_atomic

    path = ctx.out_dir / PER_SAMPLE_FILE
    write_npz_atomic(path, {"hits": hits, "images": np.arange(len(hits), dtype=np.int64)})
    return path


def matrix(
    rows: list[str],
    cols: list[str],
    cell: dict[tuple[str, str], float | None],
    kind: str,
    value_range=None,
    **labels: str,
) -> dict[str, Any]:
    """A unit's matrix as the report draws it: ``cell[(row, col)]`` in ``rows`` × ``cols``."""
    return {
        "rows": rows,
        "cols": cols,
        "values": [[cell.get((r, c)) for c in cols] for r in rows],
        "kind": kind,
        "range": value_range,
        **labels,
    }


def probe_config(epochs: int, train_subset: int | None, seed: int, augment: str, schedule_options: dict[str, Any]):
    """The probes of a study (its probes units and the tests' functional scores share them);
    ``schedule_options``: :func:`schedule` of the unit."""
    from ...probing.probe import ProbeConfig  # deferred: the study package imports no torch until a unit runs

    return ProbeConfig(epochs=epochs, seed=seed, augment=augment, train_subset=train_subset, **schedule_options)


@dataclass(frozen=True)
class RankingTestParams(UnitParams):
    """What the sensitivity and specificity tests share: the measures, how their activations are
    taken, and the probes that give the functional differences."""

    dataset: str
    seed: int
    measures: list[str]
    n_samples: int
    policy: str
    probe_epochs: int
    probe_train_subset: int | None
    fit_samples: int
    # the probes' schedule (keyword-only: the subclasses' fields come after these defaults)
    probe_scheduler: str = if_set(PROBE_SCHEDULE, "scheduler", name="probe_scheduler", kw_only=True)
    probe_schedule_unit: str = if_set(PROBE_SCHEDULE, "schedule_unit", name="probe_schedule_unit", kw_only=True)
    probe_warmup_fraction: float = if_set(PROBE_SCHEDULE, "warmup_fraction", name="probe_warmup_fraction", kw_only=True)
    # per network (in the order of the dependencies): its probes train on augmented images; the
    # reference's tlm_accuracy trains on its dataset's default augmentation (or the same images)
    probe_augment: list[bool] | None = present_if(lambda p: any(p.probe_augment or ()), None, kw_only=True)
    tlm_augment: list[bool] | None = present_if(
        lambda p: "tlm_accuracy" in p.measures and not all(p.tlm_augment or ()), None, kw_only=True
    )


def ranking_test_plan(ctx: PlanContext, planned: Planned) -> tuple[dict[str, Any], tuple[str, ...], str]:
    """What a sensitivity or specificity unit takes from the plan: the fields the two tests share (the
    measures' activations from [similarity], their probes from [probes], the TLM fit from [stitching]),
    their dependencies (every network, and the probes units, whose probes they share through the probe
    cache) and the middle stitchable layer (their default layer)."""
    config = ctx.config
    sc, pc, st = config["similarity"], config["probes"], config["stitching"]
    deps = tuple(n.id for n in ctx.networks) + tuple(u.id for u in planned.get("probes", []))
    shared = dict(
        **ctx.common,
        n_samples=sc["n_samples"],
        policy=sc["policy"],
        probe_epochs=pc["epochs"],
        probe_train_subset=pc["train_subset"],
        fit_samples=st["fit_samples"],
        probe_augment=[ctx.augmented("probes", n.id) is True for n in ctx.networks],
        tlm_augment=[ctx.augmented("stitching", n.id) is not False for n in ctx.networks],
        **{f"probe_{k}": pc[k] for k in SCHEDULE_KEYS},
    )
    return shared, deps, ctx.layers[len(ctx.layers) // 2]


def run_ranking_test(p: RankingTestParams, unit: Unit, ctx: UnitContext, **where: Any) -> dict[str, Any]:
    """The sensitivity or specificity test (``p.kind``) of Ding et al. over all the study's networks, at
    the layers ``where`` names (its probes units, when the study has them, are dependencies only so that
    their probes are in the cache)."""
    from ...data.augmentation import choice_for  # deferred: the study package imports no torch until a unit runs
    from ...sensitivity.run import run_grounding_test
    from ...sensitivity.settings import GroundingSettings

    nets = [ctx.deps[d] for d in unit.deps if ctx.deps[d]["kind"] in network_kinds()]
    models = {n["label"].split(" ", 1)[1]: load_network(n) for n in nets}
    # the networks' augmentations as the plan resolved them: one choice where they agree, else their records
    probe_augment = choice_for(p.probe_augment) if p.probe_augment else "none"
    tlm_augment = choice_for(p.tlm_augment) if p.tlm_augment else "dataset"
    probe = probe_config(p.probe_epochs, p.probe_train_subset, p.seed, probe_augment, schedule(p, "probe_"))
    settings = GroundingSettings(
        measures=list(p.measures),
        n_samples=p.n_samples,
        policy=p.policy,
        probe=probe,
        probe_cache=str(ctx.cache_dir / "probe_cache.json"),
        stitch_fit_samples=p.fit_samples,
        tlm_augment=tlm_augment,
        bootstrap=ctx.settings.get("ranking_resamples", 0),
        bootstrap_seed=ctx.settings.get("uncertainty_seed", 0),
        **vars(ctx.run),
    )
    report = run_grounding_test(p.kind, models, p.dataset, settings=settings, **where)
    paths = report.write(ctx.out_dir)
    table = [
        {k: row[k] for k in ("measure", "scope", "spearman", "spearman_p", "kendall", "kendall_p", "bad_fraction", "n")}
        for row in report.stats
        if row["group"] == "all"
    ]
    return {
        "metrics": {"tables": {f"{p.kind} test (Spearman ρ, Kendall τ, one-sided p, bad pairs)": table}},
        "artifacts": {name: path for name, path in paths.items()},
        "model_hashes": {name: m for name, m in (report.info.get("fingerprints") or {}).items()},
        "conventions": {
            "functional_difference": "|Δ probe accuracy|",
            "dissimilarity": "1 − similarity for similarities, the value for distances",
            "probe_augmentation": report.info.get("probe_augmentation"),
        },
    }
