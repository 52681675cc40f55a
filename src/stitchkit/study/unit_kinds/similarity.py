"""The ``similarity`` unit: similarity index matrices (CKA, PWCCA, Procrustes, …) between the layers of two networks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...choices import DEFAULT_POLICY, POLICIES
from ...declarations import declare
from ...uncertainty.bootstrap import BootstrapSpec
from ...utils.io import json_safe
from ..config_keys import PAIRINGS, Key, positive
from ..config_sections import TRAILING_SECTIONS
from ..params import UnitParams, present_if, schema_default
from ..planning import PlanContext, Planned, pairs
from ..units import Unit, UnitContext
from .shared import load_network

KIND = "similarity"

#: the ``[similarity]`` section of the study config (``config_section`` below; :mod:`..config`)
SECTION: dict[str, Key] = {
    "enabled": Key(bool, True, "compute similarity index matrices"),
    "measures": Key(
        list, ["cka", "pwcca", "procrustes"], "similarity measures (see stitchkit.similarity.list_measures)"
    ),
    "n_samples": Key(int, 1000, "test images the indices use", check=positive, check_text="must be ≥ 1"),
    "policy": Key(
        str,
        DEFAULT_POLICY,
        "how activations become data matrices (also for the sensitivity and specificity tests), the same for "
        "every cell of a matrix; auto_original mixes positions and pooling by shape, as the original did (its "
        "matrices are marked)",
        choices=POLICIES,
    ),
    "pairs": Key(str, "reference", "network pairs, as for stitching", choices=PAIRINGS),
}


@dataclass(frozen=True)
class SimilarityParams(UnitParams):
    kind: ClassVar[str] = KIND
    dataset: str
    seed: int
    measures: list[str]
    n_samples: int
    policy: str
    layers: list[str]
    # the indices' intervals and permutation null (issue 19): stored only when on, so that a similarity unit
    # with uncertainty off keeps the id it had before they existed; level and seed only beside one of them
    bootstrap: int = present_if(lambda p: p.bootstrap > 0, 0)
    permutations: int = present_if(lambda p: p.permutations > 0, 0)
    level: float = present_if(
        lambda p: p.bootstrap > 0 and p.level != schema_default(TRAILING_SECTIONS["uncertainty"], "level"),
        schema_default(TRAILING_SECTIONS["uncertainty"], "level"),
    )
    uncertainty_seed: int = present_if(lambda p: (p.bootstrap > 0 or p.permutations > 0) and p.uncertainty_seed != 0, 0)


@declare(
    "unit_kind",
    KIND,
    config_section="similarity",
    order=5,
    planner="plan",
    record="SimilarityParams",
    title="Similarity indices",
    help="similarity index matrices (CKA, PWCCA, Procrustes, …) between the layers of two networks",
    intro="Rows are the first network's layers and columns the second's; colour is the index's value with yellow "
    "always meaning more alike (a distance's scale is reversed); the grey panel is the width of each cell's confidence "
    "interval, and × marks a cell not above the permutation null.",
)
def run_similarity(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    from ...data import get_dataset  # deferred: no torch until a unit runs
    from ...similarity import measure_info
    from ...similarity.models import compare_models
    from ...similarity.pairs import result_matrix
    from ...similarity.settings import SimilaritySettings

    p, run = SimilarityParams.from_params(unit.params), ctx.run
    a, b = ctx.deps[unit.deps[0]], ctx.deps[unit.deps[-1]]
    model_a = load_network(a)
    model_b = model_a if unit.deps[0] == unit.deps[-1] else load_network(b)
    test = get_dataset(p.dataset, "test", root=run.data_root)
    report = compare_models(
        model_a,
        model_b,
        p.layers,
        p.layers,
        test,
        SimilaritySettings(
            measures=p.measures,
            n_samples=p.n_samples,
            all_pairs=True,
            policy=p.policy,
            bootstrap=p.bootstrap,
            permutations=p.permutations,
            level=p.level,
            uncertainty_seed=p.uncertainty_seed,
            device=run.device,
            workers=run.workers,
            cache_dir=ctx.cache_dir / "activations",
            progress=run.progress,
        ),
        sample_key=f"{p.dataset}/test/eval/first={p.n_samples}",
    )
    paths = report.write(ctx.out_dir)
    matrices = {}
    for measure in p.measures:
        values, rows, cols = result_matrix(report.results, measure)
        info = measure_info(measure)
        matrices[measure] = {
            "rows": rows,
            "cols": cols,
            "values": json_safe(values.tolist()),
            "kind": info.kind,
            "range": list(info.range),
            "row_label": f"layer of {a['label'].split(' ', 1)[1]}",
            "col_label": f"layer of {b['label'].split(' ', 1)[1]}",
            **_similarity_bounds(report.results, measure, p),
        }
    return {
        "metrics": {
            "matrices": matrices,
            "n_samples": report.info["n_samples"],
            "seconds_extract": report.info["extraction_seconds"],
            "seconds_measures": report.info["measure_seconds"],
        },
        "artifacts": {"json": paths["json"], "csv": paths["csv"]},
        "model_hashes": {"a": report.info["model1"]["fingerprint"], "b": report.info["model2"]["fingerprint"]},
        "conventions": {
            "policy": p.policy,
            "mixed_policies": report.info["mixed_policies"],
            "samples": report.info["samples"],
            "low_rank_mode": report.info["low_rank_mode"],
        },
    }


def _similarity_bounds(results: list[Any], measure: str, p: SimilarityParams) -> dict[str, Any]:
    """A similarity matrix's ``lower`` / ``upper`` (bootstrap) and ``p_value`` (permutation null) grids,
    laid out as its values (``result_matrix``), with the ``interval`` record; none when the unit computed neither."""
    from ...similarity.pairs import result_matrix  # deferred: no torch until a unit runs

    if not p.bootstrap and not p.permutations:
        return {}
    names = (("lower", "upper") if p.bootstrap else ()) + (("p_value",) if p.permutations else ())
    out: dict[str, Any] = {name: json_safe(result_matrix(results, measure, field=name)[0].tolist()) for name in names}
    spec = BootstrapSpec(p.bootstrap, p.level, p.uncertainty_seed)
    out["interval"] = {
        **(spec.record() if p.bootstrap else {"seed": p.uncertainty_seed}),
        "permutations": p.permutations,
    }
    return out


def plan(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """The measure matrices of each network pair (``similarity.pairs``; one network: itself)."""
    sc = ctx.config["similarity"]
    if not sc["enabled"]:
        return []
    n = len(ctx.networks)
    units = []
    for i, j in pairs(n, sc["pairs"]) if n > 1 or sc["pairs"] == "self" else [(0, 0)]:
        params = SimilarityParams(
            **ctx.common,
            measures=sc["measures"],
            n_samples=sc["n_samples"],
            policy=sc["policy"],
            layers=ctx.layers,
            **similarity_uncertainty(ctx.config),
        )
        units.append(
            Unit(
                params.kind,
                params.to_params(),
                (ctx.networks[i].id, ctx.networks[j].id),
                f"similarity {ctx.names[i]}↔{ctx.names[j]}",
            )
        )
    return units


def similarity_uncertainty(config: dict[str, Any]) -> dict[str, Any]:
    """The similarity units' interval and null settings (:class:`SimilarityParams`), from [uncertainty]."""
    u = config["uncertainty"]
    return {
        "bootstrap": u["similarity_bootstrap"],
        "permutations": u["permutations"],
        "level": u["level"],
        "uncertainty_seed": u["seed"],
    }
