"""The ``sensitivity`` unit: the sensitivity test of Ding et al., candidates at decreasing ranks across seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...choices import DEFAULT_GROUNDING_MEASURES
from ...declarations import declare
from ...ranks import check_ranks_fit
from ..config_keys import Key
from ..planning import PlanContext, Planned, default_ranks, select
from ..units import Unit, UnitContext
from .shared import RankingTestParams, ranking_test_plan, run_ranking_test

KIND = "sensitivity"

#: the ``[sensitivity]`` section of the study config (``config_section`` below; :mod:`..config`)
SECTION: dict[str, Key] = {
    "enabled": Key(bool, True, "run the sensitivity test (Ding et al.)"),
    "layer": Key((str, type(None)), None, "layer tested (default: the middle stitchable layer)"),
    "ranks": Key(list, [], "decreasing ranks of the candidates (default: derived from the layer width)"),
    "measures": Key(list, list(DEFAULT_GROUNDING_MEASURES), "measures tested"),
}


@dataclass(frozen=True)
class SensitivityParams(RankingTestParams):
    kind: ClassVar[str] = KIND
    layer: str
    ranks: list[int]


@declare(
    "unit_kind",
    KIND,
    config_section="sensitivity",
    order=7,
    planner="plan",
    record="SensitivityParams",
    title="Sensitivity test",
    help="the sensitivity test: candidates at decreasing ranks across seeds",
    intro="Each panel is one measure: a dot is a pair of representations, placed by the measure's dissimilarity (x) "
    "and their difference in probe accuracy (y), one colour per network group; a measure that tracks function rises "
    "from left to right (Spearman ρ and Kendall τ high, few bad pairs); the table gives these per measure, pooled "
    "and as the mean over references.",
)
def run_sensitivity(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    p = SensitivityParams.from_params(unit.params)
    return run_ranking_test(p, unit, ctx, layers=[p.layer], ranks=p.ranks or ())


def plan(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """The sensitivity test of one layer (``sensitivity.layer``, default the middle one) over all networks."""
    sens = ctx.config["sensitivity"]
    if not sens["enabled"]:
        return []
    shared, deps, middle = ranking_test_plan(ctx, planned)
    layer = select(ctx.net, [sens["layer"]], "sensitivity.layer")[0] if sens["layer"] else middle
    check_ranks_fit(sens["ranks"], {layer: ctx.shapes[layer]}, "study config: sensitivity.ranks")
    params = SensitivityParams(
        layer=layer, ranks=sens["ranks"] or default_ranks(ctx.shapes[layer]), measures=sens["measures"], **shared
    )
    return [Unit(params.kind, params.to_params(), deps, f"sensitivity {layer}")]
