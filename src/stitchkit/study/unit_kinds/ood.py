"""The ``ood`` unit: the OOD test of a stitch grid (are stitched representations in-distribution for the end
network?)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...choices import AUGMENTATIONS, DEFAULT_AUGMENTATION
from ...declarations import LiveNames, declare
from ...utils.io import json_safe, write_npz_atomic
from ..config_keys import COUNT, Key, positive, schedule_keys
from ..ood_records import NORM_DEFINITION, NORM_RATIO_MATRIX, SCORE_TABLE, norm_ratio_matrix, score_table
from ..params import UnitParams
from ..planning import PlanContext, Planned
from ..units import Unit, UnitContext

KIND = "ood"

#: the ``[ood]`` section of the study config (``config_section`` below; :mod:`..config`)
SECTION: dict[str, Key] = {
    "enabled": Key(bool, True, "test stitched representations with OOD detectors"),
    "energy": Key(bool, True, "train energy detectors (representation classifiers fine-tuned with outlier exposure)"),
    "self_pairs": Key(
        bool,
        True,
        "also test the stitches of a network into itself (false: only stitches between two networks, "
        "which are what the findings' OOD claim uses; saves the detectors of networks that are only self-stitched)",
    ),
    "training_free": Key(
        list, ["mahalanobis", "knn"], "training-free detectors", choices=LiveNames("detector", trains=False)
    ),
    "detector": Key(str, "repr_cls_resnet18", "energy detector architecture"),
    "detector_options": Key(dict, {"width": 8}, "detector architecture options"),
    "outliers": Key(str, "natural_patches_gray", "auxiliary outlier set for fine-tuning"),
    "finetune_id": Key(
        (str, type(None)),
        None,
        "in-distribution set of the fine-tuning (the paper: cifar5m; default the study's dataset)",
    ),
    "sanity": Key((str, type(None)), "digits", "sanity-check OOD set per layer (None to skip)"),
    "pretrain_epochs": Key(int, 1, "detector pre-training epochs", check=positive, check_text="must be ≥ 1"),
    "finetune_epochs": Key(int, 1, "energy fine-tuning epochs", check=positive, check_text="must be ≥ 1"),
    "batch_size": Key(
        int,
        128,
        "detector batch size (fine-tuning batches are half in-distribution, half outliers)",
        check=lambda v: v >= 2,
        check_text="must be ≥ 2",
    ),
    "train_subset": Key(
        (int, type(None)), None, "detectors train on a fixed random subset of this many images", **COUNT
    ),
    **schedule_keys("both detector phases", "×0.1 after half the fine-tuning epochs"),
    "eval_samples": Key((int, type(None)), None, "OOD evaluation on the first N test images (default all)", **COUNT),
    "augment": Key(
        str,
        DEFAULT_AUGMENTATION,
        "augmentation of the images the detectors' pre-training and the ID half of their "
        "fine-tuning feed through the end network (the outliers keep their set's): network, dataset or none, as "
        "stitching.augment",
        choices=tuple(AUGMENTATIONS),
    ),
}


@dataclass(frozen=True)
class OodParams(UnitParams):
    kind: ClassVar[str] = KIND
    dataset: str
    seed: int
    training_free: list[str]
    sanity: str | None
    eval_samples: int | None
    energy: bool


@declare(
    "unit_kind",
    KIND,
    config_section="ood",
    config_order=5.5,
    order=4,
    planner="plan",
    record="OodParams",
    title="OOD test of stitched activations",
    help="the OOD test of a stitch grid: are stitched representations in-distribution for the end network?",
    intro="Rows are the stitches' front layers and columns their end layers; each AUROC heatmap tells how well a "
    "detector separates "
    "the stitched activations from the end network's genuine ones, on one colour scale everywhere (as in the API's "
    "ood.plot()): dark purple is 1 (flagged OOD), teal 0.5 (indistinguishable), yellow 0; the norm ratio is white at "
    "1, red "
    "above, blue below; in the sanity-check table a red row is a detector that fails its check there (AUROC below "
    "detector_sanity = {detector_sanity:g}), so the findings do not use it on that layer.",
)
def run_ood(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    from ...ood.matrices import METRIC_KINDS  # deferred: no torch until a unit runs
    from ...ood.per_sample import SCORES_CONVENTION
    from ...ood.stitched import ResultsOODSettings, evaluate_results_dir

    p, run = OodParams.from_params(unit.params), ctx.run
    stitch = ctx.deps[unit.deps[0]]
    detectors = ctx.deps[unit.deps[1]]["artifacts"]["registry"] if len(unit.deps) > 1 else None
    settings = ResultsOODSettings(
        dataset=p.dataset,
        data_root=run.data_root,
        sanity_dataset=p.sanity,
        training_free=list(p.training_free),
        test_samples=p.eval_samples,
        device=run.device,
        workers=run.workers,
        seed=p.seed,
        progress=run.progress,
        group_size=ctx.group_size,
    )
    experiments = evaluate_results_dir(
        stitch["artifacts"]["runs"], settings, detector_dir=detectors, out_dir=ctx.out_dir, log=lambda message: None
    )
    matrices: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    conventions: dict[str, Any] = {}
    scores: dict[str, Any] = {}  # a stitch unit is one experiment; its keys name every cell
    for exp in experiments:
        m = exp.matrices
        scores.update(exp.score_arrays())
        rows, cols = m.front_layers, m.end_layers
        for detector in m.detectors:
            values = m.matrix("auroc", detector)
            kind, scale = METRIC_KINDS["auroc"]  # the API's convention and colours (results.plot.KIND_CMAPS)
            matrices[f"AUROC ({detector})"] = {
                "rows": rows,
                "cols": cols,
                "values": json_safe(values),
                "kind": kind,
                "range": list(scale),
            }
        matrices[NORM_RATIO_MATRIX] = norm_ratio_matrix(
            m
        )  # stored sorted by name, so drawn right after the "AUROC (…)" heatmaps
        conventions.update(m.to_dict().get("conventions", {}))
        conventions["norm ratio"] = NORM_DEFINITION
        if exp.sanity:
            tables["detector sanity check (genuine test activations vs " + str(p.sanity) + ")"] = [
                {"layer": layer, "detector": name, **{k: v for k, v in vals.items() if k in ("auroc", "aupr", "fpr95")}}
                for layer, per in exp.sanity.items()
                for name, vals in per.items()
            ]
        tables[SCORE_TABLE] = score_table(m)
    write_npz_atomic(
        ctx.out_dir / "scores.npz", scores
    )  # every image's scores and norms: the intervals are made from them
    conventions["scores"] = SCORES_CONVENTION
    return {
        "metrics": {"matrices": matrices, "tables": tables},
        "artifacts": {"out": ctx.out_dir, "scores": ctx.out_dir / "scores.npz"},
        "conventions": conventions,
    }


def tested_stitches(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """The stitch units the OOD test looks at: all, or (``ood.self_pairs = false``) those between two
    networks; none when ``ood.enabled`` is off."""
    oc = ctx.config["ood"]
    if not oc["enabled"]:
        return []
    return [u for u in planned.get("stitch", []) if oc["self_pairs"] or u.deps[0] != u.deps[1]]


def plan(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """The OOD test of every tested stitch grid, with its end network's energy detectors (the
    ``detectors`` kind's, planned before) when ``ood.energy``."""
    oc = ctx.config["ood"]
    detectors = {u.deps[0]: u for u in planned.get("detectors", [])}
    units = []
    for su in tested_stitches(ctx, planned):
        deps = (su.id,) + ((detectors[su.deps[1]].id,) if su.deps[1] in detectors else ())
        params = OodParams(
            **ctx.common,
            training_free=oc["training_free"],
            sanity=oc["sanity"],
            eval_samples=oc["eval_samples"],
            energy=oc["energy"],
        )
        units.append(Unit(params.kind, params.to_params(), deps, f"ood {su.label.split(' ', 1)[1]}"))
    return units
