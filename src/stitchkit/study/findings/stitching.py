"""The stitching claims C1a–C4, read from the stitch grids (criteria: the claims' docstrings).

Corresponding layers are defined on the square sub-grid of the layers that are both front and end
layers (:meth:`Grid.square`): layer index = position in that depth-ordered list, n = its length. Rows
or columns outside it take no part in these claims.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..store import UnitRecord
from .model import (
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    Finding,
    Outcome,
    Thresholds,
    not_testable,
    pairs_decide,
    percent,
    share,
)
from .view import Grid, StitchGrid, StudyView, available, finite, stitch_hint


def _fraction_verdict(fraction: float, needed: float) -> str:
    return SUPPORTED if fraction >= needed else NOT_SUPPORTED


def corresponding(grid: Grid) -> dict[str, float]:
    """a[i, i] of a square grid, by layer."""
    return {layer: float(grid.values[i, i]) for i, layer in enumerate(grid.layers)}


def reaching(values: dict[str, float], bound: float) -> int:
    """How many values are at least ``bound`` (NaN never is)."""
    return sum(finite(v) and v >= bound for v in values.values())


def distant_gap(far: float, n: int) -> int:
    """ceil(far · n), computed on far's decimal value (0.3 · 10 is 3, not 3.0000000000000004 → 4)."""
    return math.ceil(Fraction(str(far)) * n)


def other_layer_better(column: np.ndarray, j: int, tie: float) -> bool:
    """Whether some front layer i ≠ j has a[i, j] > a[j, j] + tie (C3: the best front layer is not j
    unless a[j, j] ≥ max_i a[i, j] − tie; C4 the same within one network). A NaN a[j, j] decides
    nothing and NaN cells are never better, so only finite cells can support the claim."""
    own = column[j]
    if not math.isfinite(own):
        return False
    others = np.delete(column, j)
    others = others[np.isfinite(others)]
    return bool(others.size) and float(others.max()) > float(own) + tie


def best_front_layers(grid: Grid, tie: float) -> tuple[dict[str, dict[str, object]], int]:
    """Per end layer of a square grid: its best front layer and whether another layer beats the
    corresponding one; and the number of end layers where one does."""
    per_layer: dict[str, dict[str, object]] = {}
    beaten = 0
    for j, end in enumerate(grid.layers):
        column = grid.values[:, j]
        better = other_layer_better(column, j, tie)
        beaten += better
        best = grid.layers[int(np.nanargmax(column))] if np.isfinite(column).any() else None
        per_layer[end] = {"best front layer": best, "another layer better": better}
    return per_layer, beaten


def _undertrained(tlm: Grid, t: Thresholds) -> str | None:
    """Why TLM's budget is too small to test C2/C3: it does not reach the end network's accuracy on
    the corresponding layers (fewer than ``most`` of them reach ``match``)."""
    diag = corresponding(tlm)
    hits = reaching(diag, t.match)
    if hits / len(diag) >= t.most:
        return None
    return (
        f"TLM does not reach the end network's accuracy even on corresponding layers ({hits} of {len(diag)} reach "
        f"match = {t.match:g}; needs most = {t.most:g}), so its budget is too small to tell"
    )


def _square(grid: StitchGrid, which: Grid | None) -> tuple[Grid | None, str | None]:
    if grid.problem:
        return None, grid.problem
    square = which.square() if which is not None else None
    if square is None:
        return None, f"the front and end layers of {grid.label} have no layer in common, so no layer corresponds"
    return square, None


# -- C1a ---------------------------------------------------------------------------------------------
def claim_c1a(view: StudyView, t: Thresholds) -> Finding:
    """supported if the fraction of corresponding layers i with a_dm[i, i] ≥ match is ≥ most."""
    used = t.pick("match", "most", "pair_support")
    pairs, why = available(
        view.stitch_pairs(("dm",)), "DM grid between two different networks of the same architecture", stitch_hint("dm")
    )
    if why:
        return not_testable("C1a", used, why)
    return pairs_decide("C1a", used, [_c1a(StitchGrid.of(dm), t) for (dm,) in pairs], t.pair_support)


def _c1a(dm: StitchGrid, t: Thresholds) -> Outcome:
    base = {"links": dm.links(), "units": [dm.label], "pair": dm.pair}
    square, why = _square(dm, dm.accuracy)
    if why:
        return Outcome(NOT_TESTABLE, why, **base)
    diag = corresponding(square)
    hits, n = reaching(diag, t.match), len(diag)
    fraction = hits / n
    reason = (
        f"{hits} of {n} corresponding layers reach {percent(t.match)} of the end network's accuracy (match = "
        f"{t.match:g}) in {dm.label}: {share(fraction, t.most, 'most')}"
    )
    numbers = {
        "grid": dm.label,
        "end accuracy": dm.end_accuracy,
        "relative accuracy a_dm[i, i]": diag,
        "fraction reaching match": fraction,
    }
    return Outcome(
        _fraction_verdict(fraction, t.most), reason, numbers, summary={"fraction reaching match": fraction}, **base
    )


# -- C1b ---------------------------------------------------------------------------------------------
def claim_c1b(view: StudyView, t: Thresholds) -> Finding:
    """For each end layer j, i* = argmin_i R_dm[i, j]; supported if the fraction with |i* − j| ≤ near
    is ≥ most. A column with a NaN residual does not count as near (its minimum is unknown); equal
    minima count as near only if all of them are."""
    used = t.pick("near", "most", "pair_support")
    pairs, why = available(
        view.stitch_pairs(("dm",)), "DM grid between two different networks of the same architecture", stitch_hint("dm")
    )
    if why:
        return not_testable("C1b", used, why)
    return pairs_decide("C1b", used, [_c1b(StitchGrid.of(dm), t) for (dm,) in pairs], t.pair_support)


def _c1b(dm: StitchGrid, t: Thresholds) -> Outcome:
    base = {"links": dm.links("residual"), "units": [dm.label], "pair": dm.pair}
    if dm.residual is None:
        return Outcome(NOT_TESTABLE, f"{dm.label} has no residual matrix", **base)
    square, why = _square(dm, dm.residual)
    if why:
        return Outcome(NOT_TESTABLE, why, **base)
    layers = square.layers
    smallest: dict[str, list[str] | None] = {}
    near = 0
    for j, end in enumerate(layers):
        column = square.values[:, j]
        if not np.isfinite(column).all():
            smallest[end] = None
            continue
        minimisers = np.flatnonzero(column == column.min())
        smallest[end] = [layers[i] for i in minimisers]
        near += all(abs(int(i) - j) <= t.near for i in minimisers)
    fraction = near / len(layers)
    reason = (
        f"for {near} of {len(layers)} end layers the smallest DM residual lies at most {t.near:g} layer(s) from the "
        f"corresponding front layer (near = {t.near:g}) in {dm.label}: {share(fraction, t.most, 'most')}"
    )
    numbers = {
        "grid": dm.label,
        "front layer(s) of the smallest residual, per end layer": smallest,
        "fraction near": fraction,
    }
    return Outcome(_fraction_verdict(fraction, t.most), reason, numbers, summary={"fraction near": fraction}, **base)


# -- C2 ----------------------------------------------------------------------------------------------
def claim_c2(view: StudyView, t: Thresholds) -> Finding:
    """Pairs P = {(i, j): i − j ≥ ceil(far · n)}; supported if the pairs with a_tlm ≥ high and
    a_dm < high (both finite) are at least ``often`` of |P|."""
    used = t.pick("far", "high", "often", "match", "most", "pair_support")
    pairs, why = available(
        view.stitch_pairs(("tlm", "dm")),
        "TLM and DM grids of the same pair of different networks",
        stitch_hint("tlm", "dm"),
    )
    if why:
        return not_testable("C2", used, why)
    return pairs_decide(
        "C2", used, [_c2(StitchGrid.of(tlm), StitchGrid.of(dm), t) for tlm, dm in pairs], t.pair_support
    )


def _c2(tlm: StitchGrid, dm: StitchGrid, t: Thresholds) -> Outcome:
    base = {"links": tlm.links() + dm.links(), "units": [tlm.label, dm.label], "pair": tlm.pair}
    if dm.problem:
        return Outcome(NOT_TESTABLE, dm.problem, **base)
    square, why = _square(tlm, tlm.accuracy)
    if why:
        return Outcome(NOT_TESTABLE, why, **base)
    layers, n = square.layers, len(square.layers)
    gap = distant_gap(t.far, n)
    distant = [(i, j) for i in range(n) for j in range(n) if i - j >= gap]
    if not distant:
        return Outcome(
            NOT_TESTABLE,
            f"with {n} corresponding layer(s) no pair has front index − end index ≥ ceil(far · n) = {gap}",
            **base,
        )
    why = _undertrained(square, t)
    if why:
        return Outcome(NOT_TESTABLE, why, {"relative accuracy a_tlm[i, i]": corresponding(square)}, **base)
    rows = []
    for i, j in distant:
        a_tlm, a_dm = float(square.values[i, j]), dm.accuracy.get(layers[i], layers[j])
        misleads = finite(a_tlm) and finite(a_dm) and a_tlm >= t.high and a_dm < t.high
        rows.append(
            {"front": layers[i], "end": layers[j], "a_tlm": a_tlm, "a_dm": a_dm, "TLM high where DM is not": misleads}
        )
    count = sum(r["TLM high where DM is not"] for r in rows)
    fraction = count / len(rows)
    reason = (
        f"{count} of {len(rows)} distant late → early pairs (the front layer at least {gap} layer(s) after the end "
        f"layer) reach {percent(t.high)} of the end network's accuracy with TLM but not with DM (high = {t.high:g}): "
        f"{share(fraction, t.often, 'often')}"
    )
    numbers = {"grids": [tlm.label, dm.label], "distant pairs": rows, "minimum index gap": gap, "fraction": fraction}
    return Outcome(_fraction_verdict(fraction, t.often), reason, numbers, summary={"fraction": fraction}, **base)


# -- C3 ----------------------------------------------------------------------------------------------
def claim_c3(view: StudyView, t: Thresholds) -> Finding:
    """supported if, for at least ``often`` of the end layers j, TLM's best front layer is not j
    (another layer beats a_tlm[j, j] by more than the tie). DM's same fraction is reported beside it."""
    used = t.pick("tie", "often", "match", "most", "pair_support")
    pairs, why = available(
        view.stitch_pairs(("tlm",)),
        "TLM grid between two different networks with the same layer names",
        stitch_hint("tlm"),
    )
    if why:
        return not_testable("C3", used, why)
    dm_of = {tlm.id: dm for tlm, dm in view.stitch_pairs(("tlm", "dm"))}
    return pairs_decide("C3", used, [_c3(StitchGrid.of(tlm), dm_of.get(tlm.id), t) for (tlm,) in pairs], t.pair_support)


def _c3(tlm: StitchGrid, dm_record: UnitRecord | None, t: Thresholds) -> Outcome:
    base = {"links": tlm.links(), "units": [tlm.label], "pair": tlm.pair}
    square, why = _square(tlm, tlm.accuracy)
    if why:
        return Outcome(NOT_TESTABLE, why, **base)
    why = _undertrained(square, t)
    if why:
        return Outcome(NOT_TESTABLE, why, {"relative accuracy a_tlm[i, i]": corresponding(square)}, **base)
    per_layer, count = best_front_layers(square, t.tie)
    fraction = count / len(per_layer)
    numbers = {"grid": tlm.label, "TLM, per end layer": per_layer, "TLM fraction not corresponding": fraction}
    numbers["DM fraction not corresponding"], dm_note = _dm_beside(dm_record, t)
    if dm_note is None:
        base["links"] += StitchGrid.of(dm_record).links()
    reason = (
        f"for {count} of {len(per_layer)} end layers TLM's best front layer is not the corresponding one in "
        f"{tlm.label}: {share(fraction, t.often, 'often')}; DM, for comparison: "
        + (f"{percent(numbers['DM fraction not corresponding'])}" if dm_note is None else dm_note)
    )
    return Outcome(
        _fraction_verdict(fraction, t.often),
        reason,
        numbers,
        summary={"TLM fraction not corresponding": fraction},
        **base,
    )


def _dm_beside(dm_record: UnitRecord | None, t: Thresholds) -> tuple[float | None, str | None]:
    """DM's fraction of end layers whose best front layer is not the corresponding one (information)."""
    if dm_record is None:
        return None, "no DM grid of this pair"
    if dm_record.status != "done":
        return None, f"{dm_record.label} not computed yet"
    dm = StitchGrid.of(dm_record)
    square, why = _square(dm, dm.accuracy)
    if why:
        return None, why
    return best_front_layers(square, t.tie)[1] / len(square.layers), None


# -- C4 ----------------------------------------------------------------------------------------------
def claim_c4(view: StudyView, t: Thresholds) -> Finding:
    """In a TLM self-pair grid, supported if for at least ``often`` of the end layers j some i ≠ j has
    a_tlm_self[i, j] > a_tlm_self[j, j] + tie."""
    used = t.pick("tie", "often", "pair_support")
    pairs, why = available(
        view.stitch_pairs(("tlm",), self_pairs=True),
        "TLM self-pair grid (a network stitched into itself)",
        stitch_hint("tlm", self_pairs=True),
    )
    if why:
        return not_testable("C4", used, why)
    return pairs_decide(
        "C4",
        used,
        [_c4(StitchGrid.of(tlm), t) for (tlm,) in pairs],
        t.pair_support,
        noun="networks stitched into themselves",
    )


def _c4(tlm: StitchGrid, t: Thresholds) -> Outcome:
    base = {"links": tlm.links(), "units": [tlm.label], "pair": tlm.pair}
    square, why = _square(tlm, tlm.accuracy)
    if why:
        return Outcome(NOT_TESTABLE, why, **base)
    per_layer = {}
    count = 0
    for j, end in enumerate(square.layers):
        column = square.values[:, j]
        beaten = other_layer_better(column, j, t.tie)
        count += beaten
        others = [square.layers[i] for i in range(len(column)) if i != j and beaten and column[i] > column[j] + t.tie]
        per_layer[end] = {"a_tlm_self[j, j]": float(column[j]), "layers rated more similar": others}
    fraction = count / len(per_layer)
    reason = (
        f"for {count} of {len(per_layer)} layers of {tlm.label} TLM rates another layer as more similar than the "
        f"layer itself, by more than {t.tie:g} (tie = {t.tie:g}): {share(fraction, t.often, 'often')}"
    )
    numbers = {"grid": tlm.label, "per layer": per_layer, "fraction": fraction}
    return Outcome(_fraction_verdict(fraction, t.often), reason, numbers, summary={"fraction": fraction}, **base)
