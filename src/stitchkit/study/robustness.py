"""How robust each finding's verdict is: the claims run again on ``verdict_resamples`` bootstrap resamples
of the test images (every matrix, donor accuracy and test statistic the claims read recomputed from the
units' per-sample statistics, :mod:`.resampling`; thresholds fixed), counting how often each verdict comes
out the same (fragile below :data:`~.findings.model.FRAGILE_BELOW`), or saying why a verdict cannot be
resampled and what its resamples hold fixed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .findings import compute_findings
from .findings.model import Findings
from .resampling import RANKING_KINDS, SAMPLERS, Resamples, Samples, kept_resamples, load_statistics, matrix_samples
from .store import UnitRecord

# The sensitivity tests' per-sample helpers are imported where they are used: the sensitivity package's
# __init__ loads torch, and the report (which reads this module) must start without it.


def _resampled(record: UnitRecord, samples: Samples, b: int) -> UnitRecord:
    """The record as it would read on resample ``b``: its matrices' values, donor accuracies and tables replaced."""
    matrices, scalars, tables = samples
    stored = record.metrics.get("matrices") or {}
    metrics = {
        **record.metrics,
        **{name: float(values[b]) for name, values in scalars.items()},
        "matrices": {**stored, **{name: {**stored[name], "values": grid[b]} for name, grid in matrices.items()}},
    }
    if (
        tables
    ):  # a test kept only its first few resamples: past them it reads as stored (and its claims are not counted)
        metrics["tables"] = {
            **(record.metrics.get("tables") or {}),
            **{name: rows[b] for name, rows in tables.items() if b < len(rows)},
        }
    return dataclasses.replace(record, metrics=metrics)


def _not_resampled(
    finding_units: list[str], by_label: dict[str, UnitRecord], sampled: set[str], mismatched: dict[str, str]
) -> str | None:
    """Why a finding's verdict cannot be resampled (None: it can)."""
    if not finding_units:
        return "not resampled: the claim is not testable here, so there is nothing to resample"
    units = [by_label[label] for label in finding_units if label in by_label]
    if not any(u.id in sampled for u in units):
        kinds = sorted({u.kind for u in units if u.kind not in SAMPLERS})
        if kinds:
            return (
                f"not resampled: its inputs (the {' and '.join(kinds)} units' statistics, e.g. rank correlations over "
                f"networks) "
                "are not per-sample statistics of test images"
            )
        stale = [mismatched[u.id] for u in units if u.id in mismatched]
        if stale:
            return f"not resampled: {'; '.join(stale)}"
        return (
            "not resampled: its units stored no per-sample statistics (run before they existed); "
            "run them again to measure it"
        )
    return None


def _ranking_notes(
    records: Sequence[UnitRecord], study_dir: str | Path, counts: Resamples
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """For the sensitivity and specificity tests with per-sample statistics: why one kept resamples other
    than the study's (unit id → sentence), and what a resample of each holds fixed (unit id → parts)."""
    from ..sensitivity.per_sample import fixed_parts  # deferred: see the note at the imports

    mismatched: dict[str, str] = {}
    held: dict[str, list[str]] = {}
    for r in records:
        stats = load_statistics(study_dir, r) if r.kind in RANKING_KINDS else None
        if stats is None:
            continue
        if not kept_resamples(stats, counts):
            mismatched[r.id] = (
                f"{r.label} kept its measures' values on {int(stats.get('resamples', 0))} resamples (seed "
                f"{int(stats.get('seed', 0))}), "
                f"none of the study's {counts.resamples} (seed {counts.seed}); run it again (--rerun {r.kind}) to "
                f"measure it"
            )
            continue
        measures = [
            row["measure"]
            for rows in (r.metrics.get("tables") or {}).values()
            for row in rows
            if row.get("scope") == "pooled"
        ]
        held[r.id] = [
            f"{r.label}: "
            + "; ".join(
                [
                    "the comparisons (networks, layers, ranks) the rank correlation runs over, and the probes' "
                    "and dm_residual's fits"
                ]
                + fixed_parts(stats, list(dict.fromkeys(measures)))
            )
        ]
    return mismatched, held


def _held_fixed(
    finding_units: list[str], by_label: dict[str, UnitRecord], sampled: set[str], held: dict[str, list[str]]
) -> str:
    """The sentence naming what a resampled finding's resamples hold fixed ('' when nothing beyond the thresholds)."""
    units = [by_label[label] for label in finding_units if label in by_label]
    parts = [part for u in units for part in held.get(u.id, [])]
    parts += [
        f"{u.label} entirely (no per-sample statistics on these resamples)"
        for u in units
        if u.kind in SAMPLERS and u.id not in sampled
    ]
    return f"; held fixed: {' | '.join(parts)}" if parts else ""


def resampled_verdicts(
    records: Sequence[UnitRecord],
    study_dir: str | Path,
    findings: Findings,
    findings_settings: dict[str, Any] | None,
    resamples: int,
    seed: int,
) -> Findings:
    """Annotate each finding with the fraction of ``resamples`` bootstrap resamples (``seed``) in which its
    verdict comes out the same (every matrix, donor accuracy and test statistic the claims read recomputed
    on the resample, the same resampled images for every unit on the same test images; thresholds fixed),
    or why it was not resampled. Returns ``findings``."""
    if not resamples:
        for f in findings.findings:
            f.robustness, f.robustness_note = None, "not measured ([uncertainty] verdict_resamples = 0)"
        return findings
    counts = Resamples(resamples, seed)
    samples = {r.id: s for r in records if (s := matrix_samples(study_dir, r, counts)) is not None and any(s)}
    mismatched, held = _ranking_notes(records, study_dir, counts)
    by_label = {r.label: r for r in records}
    notes = {f.claim: _not_resampled(f.units, by_label, set(samples), mismatched) for f in findings.findings}
    # a finding is counted on the resamples all its units kept (the tests keep only the first few: similarity_bootstrap)
    kept = {
        r.id: min((len(rows) for rows in samples[r.id][2].values()), default=resamples)
        if r.id in samples
        else resamples
        for r in records
    }
    measured = {
        f.claim: min((kept[by_label[u].id] for u in f.units if u in by_label), default=resamples)
        for f in findings.findings
    }
    same = {f.claim: 0 for f in findings.findings}
    for b in range(resamples):  # the claim functions run per resample; the matrices were recomputed for all at once
        again = compute_findings(
            [_resampled(r, samples[r.id], b) if r.id in samples else r for r in records], findings_settings
        )
        for f in findings.findings:
            same[f.claim] += b < measured[f.claim] and again[f.claim].verdict == f.verdict
    for f in findings.findings:
        if notes[f.claim] is not None:
            f.robustness, f.robustness_note = None, notes[f.claim]
        else:
            n = measured[f.claim]
            f.robustness = same[f.claim] / n
            first = (
                f" (the first {n} of the study's {resamples}: the tests keep their indices on similarity_bootstrap of "
                f"them)"
                if n < resamples
                else ""
            )
            f.robustness_note = (
                f"the verdict comes out {f.verdict!r} in {same[f.claim]} of {n} bootstrap resamples of the test "
                f"images{first} (seed {seed}){_held_fixed(f.units, by_label, set(samples), held)}"
            )
    return findings
