"""Claim C5: TLM's accurate stitches are flagged OOD, DM's matching stitches are in-distribution.

Every detector that both OOD units of a network pair have (energy, then the training-free ones in
``ood.training_free`` order) gives its own verdict. For a detector, an end layer counts only if the
detector passes the sanity check there (sanity AUROC ≥ detector_sanity, read from each OOD unit's own
sanity table); a detector that passes it nowhere, or whose usable layers have no accurate TLM or no
matching DM stitch, cannot test the claim. The pair's overall verdict combines the detectors that can:
supported when more than ``detector_support`` of them support it (a strict majority by default), not
supported otherwise, not testable when none can. A study without a sanity check (``ood.sanity`` none)
has no detector known to be usable, so C5 is not testable there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..ood_records import NORM_RATIO_MATRIX, SCORE_TABLE, score_figure_name
from ..store import UnitRecord
from .model import (
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    Finding,
    Link,
    Outcome,
    Part,
    Thresholds,
    majority,
    not_testable,
    pairs_decide,
    percent,
    share,
)
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
    return {row["layer"] for row in table[1] if row.get("detector") == detector and passes_sanity(row, minimum)}


def passes_sanity(row: dict[str, Any], minimum: float) -> bool:
    """Whether a row of the sanity table passes: its detector's sanity AUROC is ≥ ``minimum`` (detector_sanity)."""
    return finite(row.get("auroc")) and row["auroc"] >= minimum


def norm_ratios(ood: UnitRecord) -> Grid | None:
    """The OOD unit's stitched / genuine mean activation norm per stitch (None for units stored before it existed)."""
    return Grid.from_stored((ood.metrics.get("matrices") or {}).get(NORM_RATIO_MATRIX))


def _part(
    stitch: StitchGrid,
    auroc: Grid,
    layers: set[str],
    accurate: Callable[[float], bool],
    holds: Callable[[float], bool],
    norms: Grid | None,
) -> dict[str, Any]:
    """Among the stitches on usable end layers that are accurate, how many the AUROC criterion holds for
    (a NaN accuracy is not accurate; a NaN AUROC never holds); each cell with its norm ratio, which says
    how an AUROC far from ½ comes about."""
    grid = stitch.accuracy
    pairs = [
        (r, c)
        for r in grid.rows
        for c in grid.cols
        if c in layers and finite(grid.get(r, c)) and accurate(grid.get(r, c))
    ]
    cells = [
        {
            "front": r,
            "end": c,
            "relative accuracy": grid.get(r, c),
            "AUROC": auroc.get(r, c),
            **({"norm ratio": norms.get(r, c)} if norms is not None else {}),
        }
        for r, c in pairs
    ]
    count = sum(finite(cell["AUROC"]) and holds(cell["AUROC"]) for cell in cells)
    return {"pairs": len(cells), "count": count, "fraction": count / len(cells) if cells else None, "cells": cells}


def claim_c5(view: StudyView, t: Thresholds) -> Finding:
    """Per detector: supported if, among TLM stitches with a_tlm ≥ high, at least ``often`` have AUROC ≥
    ood_auroc, and among DM stitches with a_dm ≥ match at least ``often`` have AUROC ≤ id_auroc (on the
    end layers where the detector passes its sanity check). Overall, per network pair: supported if more
    than ``detector_support`` of the detectors that can test it support it."""
    used = t.pick(
        "high", "match", "ood_auroc", "id_auroc", "detector_sanity", "often", "detector_support", "pair_support"
    )
    stitched = view.stitch_pairs(("tlm", "dm"))
    pairs, why = available(
        stitched, "TLM and DM grids of the same pair of different networks", stitch_hint("tlm", "dm")
    )
    if why:
        return not_testable("C5", used, why)
    tested = [(tlm, dm, view.ood_of(tlm), view.ood_of(dm)) for tlm, dm in stitched]
    tested = [c for c in tested if c[2] is not None and c[3] is not None]
    quads, why = available(tested, "OOD test of a TLM and a DM grid of the same network pair", "[ood] enabled = true")
    if why:
        return not_testable("C5", used, why)
    return pairs_decide(
        "C5",
        used,
        [_c5(StitchGrid.of(tlm), StitchGrid.of(dm), ood_tlm, ood_dm, t) for tlm, dm, ood_tlm, ood_dm in quads],
        t.pair_support,
    )


def _contrast(
    tlm: StitchGrid, dm: StitchGrid, ood_tlm: UnitRecord, ood_dm: UnitRecord, detector: str, t: Thresholds
) -> tuple[str, str, dict[str, Any]]:
    """(verdict, reason, numbers) of one detector."""
    auroc = {u.id: Grid.from_stored(u.metrics["matrices"][auroc_name(detector)]) for u in (ood_tlm, ood_dm)}
    layers = {u.id: usable_layers(u, detector, t.detector_sanity) for u in (ood_tlm, ood_dm)}
    numbers: dict[str, Any] = {
        "detector": detector,
        "usable end layers (TLM test)": sorted(layers[ood_tlm.id]),
        "usable end layers (DM test)": sorted(layers[ood_dm.id]),
    }
    if not layers[ood_tlm.id] or not layers[ood_dm.id]:
        missing = ood_tlm if not layers[ood_tlm.id] else ood_dm
        cause = (
            "has no sanity check (set ood.sanity)"
            if sanity_table(missing) is None
            else f"passes the sanity check on no end layer (its sanity AUROC is below detector_sanity = "
            f"{t.detector_sanity:g} on each)"
        )
        return NOT_TESTABLE, f"{detector}: not usable: in {missing.label} it {cause}", numbers
    numbers["TLM: accurate stitches flagged OOD"] = tlm_part = _part(
        tlm,
        auroc[ood_tlm.id],
        layers[ood_tlm.id],
        lambda a: a >= t.high,
        lambda u: u >= t.ood_auroc,
        norm_ratios(ood_tlm),
    )
    numbers["DM: matching stitches in-distribution"] = dm_part = _part(
        dm, auroc[ood_dm.id], layers[ood_dm.id], lambda a: a >= t.match, lambda u: u <= t.id_auroc, norm_ratios(ood_dm)
    )
    if not tlm_part["pairs"]:
        return (
            NOT_TESTABLE,
            (
                f"{detector}: no TLM stitch reaches {percent(t.high)} of the end network's accuracy (high = "
                f"{t.high:g}) on an end layer where {detector} is usable, so there is no accurate TLM pair to test"
            ),
            numbers,
        )
    if not dm_part["pairs"]:
        return (
            NOT_TESTABLE,
            (
                f"{detector}: DM does not match any pair on an end layer where {detector} is usable, so the OOD "
                f"contrast is "
                "not testable"
            ),
            numbers,
        )
    ok = tlm_part["fraction"] >= t.often and dm_part["fraction"] >= t.often
    reason = (
        f"{detector}: {tlm_part['count']} of {tlm_part['pairs']} accurate TLM stitches are flagged OOD (AUROC at "
        f"least ood_auroc = "
        f"{t.ood_auroc:g}): {percent(tlm_part['fraction'])}, and {dm_part['count']} of {dm_part['pairs']} matching DM "
        f"stitches look "
        f"in-distribution (AUROC at most id_auroc = {t.id_auroc:g}): {percent(dm_part['fraction'])}; each needs at "
        f"least {percent(t.often)} (often = {t.often:g})"
    )
    return (SUPPORTED if ok else NOT_SUPPORTED), reason, numbers


def _c5(tlm: StitchGrid, dm: StitchGrid, ood_tlm: UnitRecord, ood_dm: UnitRecord, t: Thresholds) -> Outcome:
    units = [tlm.label, dm.label, ood_tlm.label, ood_dm.label]
    links = tlm.links() + dm.links()
    base = {"units": units, "pair": tlm.pair}
    problem = tlm.problem or dm.problem
    if problem:
        return Outcome(NOT_TESTABLE, problem, links=links, **base)
    shared = [d for d in detectors_of(ood_tlm) if d in detectors_of(ood_dm)]
    if not shared:
        return Outcome(
            NOT_TESTABLE,
            f"no usable detector: {ood_tlm.label} and {ood_dm.label} have no AUROC matrix of a common detector",
            links=links,
            **base,
        )
    per_detector: dict[str, Any] = {}
    parts = []
    for detector in shared:
        verdict, reason, numbers = _contrast(tlm, dm, ood_tlm, ood_dm, detector, t)
        per_detector[detector] = {
            "verdict": verdict,
            "reason": reason,
            **{k: v for k, v in numbers.items() if k != "detector"},
        }
        parts.append(Part(detector, verdict, reason))
        links += [unit_link(unit, auroc_name(detector)) for unit in (ood_tlm, ood_dm)]
    links += _explaining_links(ood_tlm, ood_dm, shared)
    verdict, k, n = majority([p.verdict for p in parts], t.detector_support)
    listing = "; ".join(f"{p.label}: {p.verdict}" for p in parts)
    if verdict == NOT_TESTABLE:
        reason = "no detector can test it — " + "; ".join(p.reason for p in parts)
    else:
        shown = share(k / n, t.detector_support, "detector_support", strict=True)
        reason = f"{k} of {n} detectors that can test it support it ({shown}) — {listing}"
    numbers = {"detectors supporting": k, "detectors that can test it": n, "per detector": per_detector}
    scale = _tlm_norm_scale(per_detector)
    if scale is not None:
        numbers["norm ratio of the accurate TLM stitches (median, min, max)"] = scale
        if 0 < k < n:  # the detectors disagree: say what the scores react to
            reason += (
                f"; the detectors disagree — the accurate TLM stitches' activations have {scale[0]:.3g}× the genuine "
                f"ones' mean norm (median; {scale[1]:.3g}–{scale[2]:.3g}), see the score distributions"
            )
    summary = {"detectors supporting": f"{k} of {n}", **{d: per_detector[d]["verdict"] for d in shared}}
    return Outcome(verdict, reason, numbers, links=links, summary=summary, parts=parts, **base)


def _tlm_norm_scale(per_detector: dict[str, Any]) -> tuple[float, float, float] | None:
    """Median, min and max norm ratio of the accurate TLM stitches any detector looked at (None without the records)."""
    ratios = {
        (c["front"], c["end"]): c["norm ratio"]
        for numbers in per_detector.values()
        for c in (numbers.get("TLM: accurate stitches flagged OOD") or {}).get("cells", [])
        if finite(c.get("norm ratio"))
    }
    if not ratios:
        return None
    values = sorted(ratios.values())
    return float(np.median(values)), values[0], values[-1]


def _explaining_links(ood_tlm: UnitRecord, ood_dm: UnitRecord, detectors: list[str]) -> list[Link]:
    """The sanity tables, and what explains an AUROC (the norm-ratio heatmaps, the score distributions), of both
    OOD units."""
    links = []
    for unit in (ood_tlm, ood_dm):
        table = sanity_table(unit)
        if table is not None:
            links.append(unit_link(unit, table[0], figure=False))
        if norm_ratios(unit) is not None:
            links.append(unit_link(unit, NORM_RATIO_MATRIX))
        tables = unit.metrics.get("tables") or {}
        if SCORE_TABLE in tables:
            links += [unit_link(unit, score_figure_name(d)) for d in detectors]
    return links
