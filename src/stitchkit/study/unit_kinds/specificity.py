"""The ``specificity`` unit: the specificity test of Ding et al., all layers of all seeds against a reference layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...choices import DEFAULT_GROUNDING_MEASURES
from ...declarations import declare
from ..config_keys import Key
from ..planning import PlanContext, Planned, select
from ..units import Unit, UnitContext
from .shared import RankingTestParams, ranking_test_plan, run_ranking_test

KIND = "specificity"

#: the ``[specificity]`` section of the study config (``config_section`` below; :mod:`..config`)
SECTION: dict[str, Key] = {
    "enabled": Key(bool, True, "run the specificity test"),
    "reference_layer": Key((str, type(None)), None, "reference layer (default: the middle stitchable layer)"),
    "measures": Key(list, list(DEFAULT_GROUNDING_MEASURES), "measures tested"),
}


@dataclass(frozen=True)
class SpecificityParams(RankingTestParams):
    kind: ClassVar[str] = KIND
    reference_layer: str
    layers: list[str]


@declare(
    "unit_kind",
    KIND,
    config_section="specificity",
    order=8,
    planner="plan",
    record="SpecificityParams",
    title="Specificity test",
    help="the specificity test: all layers of all seeds against a reference layer",
    intro="As in the sensitivity test, one panel per measure and one dot per pair of layers (x: the measure's "
    "dissimilarity, y: the difference in probe accuracy); the table gives the rank correlations per measure.",
)
def run_specificity(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    p = SpecificityParams.from_params(unit.params)
    return run_ranking_test(p, unit, ctx, layers=p.layers, reference_layers=[p.reference_layer])


def plan(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """The specificity test: every layer of every network against a reference layer
    (``specificity.reference_layer``, default the middle one)."""
    spec_cfg = ctx.config["specificity"]
    if not spec_cfg["enabled"]:
        return []
    shared, deps, middle = ranking_test_plan(ctx, planned)
    layer = (
        select(ctx.net, [spec_cfg["reference_layer"]], "specificity.reference_layer")[0]
        if spec_cfg["reference_layer"]
        else middle
    )
    params = SpecificityParams(reference_layer=layer, layers=ctx.layers, measures=spec_cfg["measures"], **shared)
    return [Unit(params.kind, params.to_params(), deps, f"specificity {layer}")]
