"""Claim C6: direct matching tracks functional differences at least as well as the similarity indices.

Read from the sensitivity and specificity units' tables (the statistics over all groups, the
``pooled`` scope: every (reference, candidate) pair in one ranking, the scope with p-values). Ding et
al.'s published Spearman ρ (BERT) are the reference ordering of the three indices; the Kendall τ
between the study's ordering and theirs is information, not part of the verdict.
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats as sps

from ..store import UnitRecord
from .model import CLAIMS, NOT_SUPPORTED, SUPPORTED, Finding, Thresholds, not_testable
from .view import StudyView, available, finite, unit_link

TESTS = ("sensitivity", "specificity")
INDICES = ("cka", "pwcca", "procrustes")
DM_MEASURE = "dm_residual"
SCOPE = "pooled"
#: Ding, Denain & Steinhardt 2021, BERT: Spearman ρ of PC deletion (our sensitivity test) and layer depth (specificity)
DING_PUBLISHED = {
    "sensitivity": {"pwcca": 0.87, "procrustes": 0.86, "cka": 0.751},
    "specificity": {"cka": 0.628, "procrustes": 0.574, "pwcca": 0.491},
}
DING_TESTS = {"sensitivity": "PC deletion", "specificity": "layer depth"}


def statistics_table(record: UnitRecord) -> tuple[str, dict[str, dict[str, float]]] | None:
    """(table name, measure → {rho, p}) of a finished test unit (None without its table)."""
    for name, rows in (record.metrics.get("tables") or {}).items():
        if name.startswith(f"{record.kind} test"):
            stats = {
                row["measure"]: {"rho": row.get("spearman"), "p": row.get("spearman_p")}
                for row in rows
                if row.get("scope") == SCOPE and row.get("group", "all") == "all"
            }
            return name, stats
    return None


def ordering_agreement(rhos: dict[str, Any], published: dict[str, float]) -> float | None:
    """Kendall τ-b between the study's ρ and the published ones over the measures both have (finite);
    None with fewer than two such measures or when the study's are all equal."""
    common = [m for m in published if finite(rhos.get(m))]
    if len(common) < 2:
        return None
    tau = sps.kendalltau([rhos[m] for m in common], [published[m] for m in common]).statistic
    return float(tau) if math.isfinite(tau) else None


def claim_c6(view: StudyView, t: Thresholds) -> Finding:
    """supported if, in both tests, dm_residual's ρ is significantly positive (one-sided p < alpha) and
    not below the highest finite ρ among cka, pwcca, procrustes by more than rho_tolerance ("at least as
    well as the similarity indices"); not supported otherwise (a NaN ρ or p is never significant; with
    no finite index ρ the comparison fails)."""
    used = t.pick("alpha", "rho_tolerance")
    records = {test: view.single(test) for test in TESTS}
    for test in TESTS:
        if records[test] is None:
            return not_testable("C6", used, f"the study has no {test} test (add it with [{test}] enabled = true)")
    _, why = available([tuple(records.values())], "sensitivity and specificity tests", "")
    if why:
        return not_testable("C6", used, why)
    numbers: dict[str, Any] = {}
    links, checks = [], []
    for test, record in records.items():
        table = statistics_table(record)
        if table is None:
            return not_testable("C6", used, f"{record.label} has no statistics table")
        name, stats = table
        links.append(unit_link(record, name, figure=False))
        rhos = {m: s["rho"] for m, s in stats.items()}
        numbers[test] = {
            "Spearman ρ and one-sided p (pooled)": stats,
            f"Ding et al. ({DING_TESTS[test]}, BERT)": DING_PUBLISHED[test],
            "study's ordering of the indices": sorted(
                (m for m in INDICES if finite(rhos.get(m))), key=lambda m: -rhos[m]
            ),
            "Ding et al.'s ordering": sorted(DING_PUBLISHED[test], key=lambda m: -DING_PUBLISHED[test][m]),
            "Kendall τ with Ding et al.'s ordering": ordering_agreement(rhos, DING_PUBLISHED[test]),
        }
        if DM_MEASURE not in stats:
            return not_testable(
                "C6",
                used,
                f"{DM_MEASURE} is not among the {test} test's measures (add it to {test}.measures)",
                numbers=numbers,
                links=links,
                units=[r.label for r in records.values()],
            )
        if not any(m in stats for m in INDICES):
            return not_testable(
                "C6",
                used,
                f"the {test} test has no similarity index ({', '.join(INDICES)}) to compare {DM_MEASURE} with",
                numbers=numbers,
                links=links,
                units=[r.label for r in records.values()],
            )
        rho, p = stats[DM_MEASURE]["rho"], stats[DM_MEASURE]["p"]
        significant = finite(rho) and rho > 0 and finite(p) and p < t.alpha
        index_rhos = {m: rhos[m] for m in INDICES if finite(rhos.get(m))}
        best = max(index_rhos, key=index_rhos.get) if index_rhos else None
        highest = index_rhos[best] if best else None
        at_least = highest is not None and finite(rho) and rho >= highest - t.rho_tolerance
        numbers[test].update(
            {
                f"{DM_MEASURE} significantly positive": significant,
                "highest index ρ": highest,
                "highest index": best,
                f"{DM_MEASURE} at least as high (within rho_tolerance)": at_least,
            }
        )
        checks.append(
            f"{test}: ρ = {_num(rho)} with p = {_num(p)}, {'significant' if significant else 'not significant'} at "
            f"alpha = {t.alpha:g}; {'within' if at_least else 'more than'} rho_tolerance = {t.rho_tolerance:g} "
            f"{'of' if at_least else 'below'} the best index's ρ {_num(highest)}{f' ({best})' if best else ''}"
        )
    ok = all(
        numbers[test][f"{DM_MEASURE} significantly positive"]
        and numbers[test][f"{DM_MEASURE} at least as high (within rho_tolerance)"]
        for test in TESTS
    )
    reason = f"{DM_MEASURE}: " + "; ".join(checks)
    return Finding(
        "C6",
        CLAIMS["C6"],
        SUPPORTED if ok else NOT_SUPPORTED,
        reason,
        numbers,
        used,
        links,
        [r.label for r in records.values()],
    )


def _num(value: Any) -> str:
    return f"{value:.3g}" if finite(value) else "undefined"
