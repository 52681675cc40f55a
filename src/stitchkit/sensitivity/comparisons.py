"""Which (reference, candidate) pairs the sensitivity and specificity tests compare, and which of the
measures are computed on arrays and which by stitching."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import StitchkitError
from ..ranks import check_ranks
from ..similarity.pairs import Rep
from ..similarity.registry import measure_info

TESTS = ("sensitivity", "specificity")
STITCH_MEASURES = ("dm_accuracy", "tlm_accuracy")
ALL = "all"


@dataclass(frozen=True)
class Comparison:
    """One (reference, candidate) pair of a test, in a group (the layer or reference layer)."""

    group: str
    reference: Rep
    candidate: Rep


def sensitivity_comparisons(
    networks: Sequence[str], layers: Sequence[str], ranks: Iterable[int | None]
) -> list[Comparison]:
    """For each layer: every network's full-rank layer as a reference against that layer of every
    network at every rank (and full rank), except the reference itself."""
    ranks = check_ranks(list(ranks) + [None])
    _check_names(networks, layers)
    out = []
    for layer in layers:
        for ref_net in networks:
            ref = Rep(ref_net, layer, None)
            for net in networks:
                for r in ranks:
                    cand = Rep(net, layer, r)
                    if cand != ref:
                        out.append(Comparison(layer, ref, cand))
    return out


def specificity_comparisons(
    networks: Sequence[str], layers: Sequence[str], reference_layers: Sequence[str] | None = None
) -> list[Comparison]:
    """For each reference layer: every network's reference layer against every layer of every network
    (all at full rank), except the reference itself."""
    reference_layers = list(reference_layers) if reference_layers else list(layers)
    _check_names(networks, layers)
    unknown = [layer for layer in reference_layers if layer not in layers]
    if unknown:
        raise StitchkitError(
            f"reference layers {', '.join(unknown)} are not among the compared layers {', '.join(layers)}"
        )
    out = []
    for ref_layer in reference_layers:
        for ref_net in networks:
            ref = Rep(ref_net, ref_layer, None)
            for net in networks:
                for layer in layers:
                    cand = Rep(net, layer, None)
                    if cand != ref:
                        out.append(Comparison(ref_layer, ref, cand))
    return out


def _check_names(networks: Sequence[str], layers: Sequence[str]) -> None:
    if len(networks) < 1 or len(set(networks)) != len(networks):
        raise StitchkitError(f"the tests need at least one network with distinct names, got {list(networks)}")
    if not layers:
        raise StitchkitError("the tests need at least one layer")


def split_measures(measures: Sequence[str]) -> tuple[list[str], list[str]]:
    """(array measures, stitching measures) by the measures' metadata; unknown names raise."""
    array, stitch = [], []
    for name in measures:
        info = measure_info(name)
        (stitch if info.requires_models else array).append(info.name)
    return list(dict.fromkeys(array)), list(dict.fromkeys(stitch))
