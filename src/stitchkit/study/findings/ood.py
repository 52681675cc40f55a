"""Claim C5: TLM's accurate stitches are flagged OOD, DM's matching stitches are in-distribution.

The detector is energy when both OOD units have it, else the first of the OOD units' training-free
detectors (``ood.training_free`` order) that both have; the others are reported for information. An
end layer counts only if the chosen detector passes the sanity check there (sanity AUROC ≥
detector_sanity, read from each OOD unit's own sanity table); a study without a sanity check
(``ood.sanity`` none) has no detector known to be usable, so C5 is not testable there.
"""

from __future__ import annotations

from typing import Any, Callable

from ..store import UnitRecord
from .model import NOT_SUPPORTED, NOT_TESTABLE, SUPPORTED, Finding, Outcome, Thresholds, first_decides, not_testable
from .view import Grid, StitchGrid, StudyView, available, finite, stitch_hint, unit_link

SANITY_TABLE = "detector sanity check"


def auroc_name(detector: str) -> str:
    return f"AUROC ({detector})"


def detectors_of(ood: UnitRecord) -> list[str]:
    """The unit's detectors with an AUROC matrix: energy first, then the training-free ones in config order."""
    matrices = ood.metrics.get("matrices") or {}
    order = ["energy", *ood.config.get("training_free", [])]
    return [d for d in order if Grid.from_stored(matrices.get(auroc_name(d))) is not None]


def sanity_table(ood: UnitRecord) -> tuple[str, list[dict[str, Any]]] | None:
    for name, rows in (ood.metrics.get("tables") or {}).items():
        if name.startswith(SANITY_TABLE):
            return name, rows
    return None


def usable_layers(ood: UnitRecord, detector: str, minimum: float) -> set[str]:
    """End layers whose ``detector`` has a sanity AUROC ≥ ``minimum``."""
    table = sanity_table(ood)
    if table is None:
        return set()
    return {row["layer"] for row in table[1] if row.get("detector") == detector and finite(row.get("auroc")) and row["auroc"] >= minimum}


def _part(stitch: StitchGrid, auroc: Grid, layers: set[str], accurate: Callable[[float], bool], holds: Callable[[float], bool]) -> dict[str, Any]:
    """Among the stitches on usable end layers that are accurate, how many the AUROC criterion holds for
    (a NaN accuracy is not accurate; a NaN AUROC never holds)."""
    grid = stitch.accuracy
    pairs = [(r, c) for r in grid.rows for c in grid.cols if c in layers and finite(grid.get(r, c)) and accurate(grid.get(r, c))]
    cells = [{"front": r, "end": c, "relative accuracy": grid.get(r, c), "AUROC": auroc.get(r, c)} for r, c in pairs]
    count = sum(finite(cell["AUROC"]) and holds(cell["AUROC"]) for cell in cells)
    return {"pairs": len(cells), "count": count, "fraction": count / len(cells) if cells else None, "cells": cells}


def claim_c5(view: StudyView, t: Thresholds) -> Finding:
    """supported if, among TLM stitches with a_tlm ≥ high, at least ``often`` have AUROC ≥ ood_auroc,
    and among DM stitches with a_dm ≥ match at least ``often`` have AUROC ≤ id_auroc."""
    used = t.pick("high", "match", "ood_auroc", "id_auroc", "detector_sanity", "often")
    stitched = view.stitch_pairs(("tlm", "dm"))
    pairs, why = available(stitched, "TLM and DM grids of the same pair of different networks", stitch_hint("tlm", "dm"))
    if why:
        return not_testable("C5", used, why)
    tested = [(tlm, dm, view.ood_of(tlm), view.ood_of(dm)) for tlm, dm in stitched]
    tested = [c for c in tested if c[2] is not None and c[3] is not None]
    quads, why = available(tested, "OOD test of a TLM and a DM grid of the same network pair", "[ood] enabled = true")
    if why:
        return not_testable("C5", used, why)
    return first_decides("C5", used, [_c5(StitchGrid.of(tlm), StitchGrid.of(dm), ood_tlm, ood_dm, t) for tlm, dm, ood_tlm, ood_dm in quads])


def _contrast(tlm: StitchGrid, dm: StitchGrid, ood_tlm: UnitRecord, ood_dm: UnitRecord, detector: str, t: Thresholds) -> tuple[str, str, dict[str, Any]]:
    """(verdict, reason, numbers) of one detector."""
    auroc = {u.id: Grid.from_stored(u.metrics["matrices"][auroc_name(detector)]) for u in (ood_tlm, ood_dm)}
    layers = {u.id: usable_layers(u, detector, t.detector_sanity) for u in (ood_tlm, ood_dm)}
    numbers: dict[str, Any] = {"detector": detector, "usable end layers (TLM test)": sorted(layers[ood_tlm.id]),
                               "usable end layers (DM test)": sorted(layers[ood_dm.id])}
    if not layers[ood_tlm.id] or not layers[ood_dm.id]:
        missing = ood_tlm if not layers[ood_tlm.id] else ood_dm
        cause = "has no sanity check (set ood.sanity)" if sanity_table(missing) is None else \
            f"passes the sanity check (AUROC ≥ detector_sanity = {t.detector_sanity:g}) on no end layer"
        return NOT_TESTABLE, f"no usable detector: {detector} of {missing.label} {cause}", numbers
    numbers["TLM: accurate stitches flagged OOD"] = tlm_part = _part(
        tlm, auroc[ood_tlm.id], layers[ood_tlm.id], lambda a: a >= t.high, lambda u: u >= t.ood_auroc)
    numbers["DM: matching stitches in-distribution"] = dm_part = _part(
        dm, auroc[ood_dm.id], layers[ood_dm.id], lambda a: a >= t.match, lambda u: u <= t.id_auroc)
    if not tlm_part["pairs"]:
        return NOT_TESTABLE, f"no TLM stitch reaches high = {t.high:g} on an end layer with a usable {detector} detector, so there is no accurate TLM pair to test", numbers
    if not dm_part["pairs"]:
        return NOT_TESTABLE, "DM does not match any pair (on an end layer with a usable detector), so the OOD contrast is not testable", numbers
    ok = tlm_part["fraction"] >= t.often and dm_part["fraction"] >= t.often
    reason = (f"{detector}: {tlm_part['count']} of {tlm_part['pairs']} accurate TLM stitches have AUROC ≥ ood_auroc = {t.ood_auroc:g} "
              f"({tlm_part['fraction']:.3g}), {dm_part['count']} of {dm_part['pairs']} matching DM stitches have AUROC ≤ id_auroc = {t.id_auroc:g} "
              f"({dm_part['fraction']:.3g}); both must be ≥ often = {t.often:g}")
    return (SUPPORTED if ok else NOT_SUPPORTED), reason, numbers


def _c5(tlm: StitchGrid, dm: StitchGrid, ood_tlm: UnitRecord, ood_dm: UnitRecord, t: Thresholds) -> Outcome:
    units = [tlm.label, dm.label, ood_tlm.label, ood_dm.label]
    links = tlm.links() + dm.links()
    problem = tlm.problem or dm.problem
    if problem:
        return Outcome(NOT_TESTABLE, problem, links=links, units=units)
    shared = [d for d in detectors_of(ood_tlm) if d in detectors_of(ood_dm)]
    if not shared:
        return Outcome(NOT_TESTABLE, f"no usable detector: {ood_tlm.label} and {ood_dm.label} have no AUROC matrix of a common detector", links=links, units=units)
    detector = shared[0]
    verdict, reason, numbers = _contrast(tlm, dm, ood_tlm, ood_dm, detector, t)
    numbers["other detectors"] = {}
    for other in shared[1:]:
        v, r, n = _contrast(tlm, dm, ood_tlm, ood_dm, other, t)
        numbers["other detectors"][other] = {"verdict": v, "reason": r, **{k: n[k] for k in n if k != "detector"}}
    for unit in (ood_tlm, ood_dm):
        links.append(unit_link(unit, auroc_name(detector)))
        table = sanity_table(unit)
        if table is not None:
            links.append(unit_link(unit, table[0], figure=False))
    summary = {"detector": detector, "verdict reason": reason}
    return Outcome(verdict, reason, numbers, links=links, units=units, summary=summary)
