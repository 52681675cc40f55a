"""How sure a study's numbers are, computed at report time from the per-sample statistics its units
store (issue 19), so that switching ``[uncertainty]`` on re-runs no stitch, OOD or probe unit.

Every unit that measures something on test images stores, whatever the settings, what each image
contributed (the CONTRACT formats): a stitch unit its hits and residual numerators and denominators per
test image and its fit residual's per fit image, the map held fixed (``per_sample.npz``), an OOD unit its
detector scores and activation norms per image (``scores.npz``), a probes unit its probes' hits per image
and a network (``train`` / ``network``) unit its clean hits (``per_sample.npz``), a sensitivity or
specificity test its probes' hits and its indices' values on the verdict resamples
(``per_sample.npz``, :mod:`stitchkit.sensitivity.per_sample`: an index is no sum over images, so the
test computes it on the resamples the study passes it, outside its identity). A bootstrap resample is
a row of counts (:func:`~stitchkit.uncertainty.bootstrap.resample_counts`), the same for every unit on
the same number of test images, so

* :func:`matrix_samples` recomputes every matrix the unit reports, for all resamples at once (a mean
  and a ratio of sums are one matrix product each; the OOD metrics are weighted by the counts);
* :func:`interval_matrices` turns them into percentile intervals (the matrices' ``lower`` / ``upper``);
* :func:`verdict_robustness` recomputes every matrix and donor accuracy the findings read for each of
  ``verdict_resamples`` resamples, runs the claims on them and says how often each verdict comes out
  the same (fragile below :data:`~.findings.model.FRAGILE_BELOW`).

The similarity units compute their intervals and permutation p-values themselves (they hold the
activations); their matrices arrive here with bounds already.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..stitch_methods import METHOD_TITLES
from ..uncertainty.bootstrap import BootstrapSpec, percentile_interval, resample_counts
from ..uncertainty.intervals import mean_samples, ratio_samples
from ..uncertainty.stitch_scores import SEP, metric_samples
from ..utils.io import read_npz
from .config import validate_section
from .findings import compute_findings
from .findings.model import Findings
from .ood_records import NORM_RATIO_MATRIX
from .store import UnitRecord

# The sensitivity tests' per-sample helpers are imported where they are used: the sensitivity package's
# __init__ loads torch, and the report (which reads this module) must start without it.
from .units import resolve_artifacts

#: the artifact that holds a unit kind's per-sample statistics
STATISTICS_ARTIFACT = {
    "stitch": "per_sample",
    "ood": "scores",
    "probes": "per_sample",
    "sensitivity": "per_sample",
    "specificity": "per_sample",
    "train": "per_sample",
    "network": "per_sample",
}
RANKING_KINDS = ("sensitivity", "specificity")
PROBE_MATRIX = "probe accuracy"
FIT_RESIDUAL = "residual (fit samples)"
#: what the fit residual's interval holds fixed (its interval record says so)
FIT_HELD_FIXED = (
    "the map fitted on these images: its per-image terms are resampled with the fit held fixed (the interval covers "
    "the evaluation on the fit images, not a refit on another draw of them)"
)
AUROC_PREFIX = "AUROC ("


@dataclass(frozen=True)
class UncertaintySettings:
    """A study's ``[uncertainty]`` section (a store written before it existed gets its defaults)."""

    bootstrap: int
    similarity_bootstrap: int
    permutations: int
    level: float
    seed: int
    verdict_resamples: int

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> UncertaintySettings:
        return cls(**validate_section("uncertainty", (config or {}).get("uncertainty") or {}))

    @property
    def spec(self) -> BootstrapSpec:
        return BootstrapSpec(self.bootstrap, self.level, self.seed)


class Resamples:
    """The counts of ``resamples`` bootstrap resamples of n images, by n (:func:`resample_counts`: the
    same for every unit on n images)."""

    def __init__(self, resamples: int, seed: int):
        self.resamples, self.seed = resamples, seed

    def __call__(self, n: int) -> np.ndarray:
        return resample_counts(n, self.resamples, self.seed)


# -- the per-sample statistics of a unit ---------------------------------------------------------------
def load_statistics(study_dir: str | Path, record: UnitRecord) -> dict[str, np.ndarray] | None:
    """The per-sample statistics a finished unit stored (None: a kind without them, or a unit run
    before they existed)."""
    key = STATISTICS_ARTIFACT.get(record.kind)
    if key is None or record.status != "done" or key not in (record.artifacts or {}):
        return None
    path = Path(resolve_artifacts(Path(study_dir), record.id, record.kind, {key: record.artifacts[key]})[key])
    if not path.is_file():
        return None
    return read_npz(path)


def _aligned(samples: np.ndarray, rows: Sequence[str], cols: Sequence[str], entry: dict[str, Any]) -> np.ndarray:
    """``(B, R, C)`` samples laid out as the stored matrix ``entry``'s rows and columns (NaN where it has a
    cell the statistics do not)."""
    out = np.full((samples.shape[0], len(entry["rows"]), len(entry["cols"])), np.nan)
    r_at, c_at = {r: i for i, r in enumerate(rows)}, {c: j for j, c in enumerate(cols)}
    ri = [(i, r_at[r]) for i, r in enumerate(entry["rows"]) if r in r_at]
    ci = [(j, c_at[c]) for j, c in enumerate(entry["cols"]) if c in c_at]
    if ri and ci:
        (to_r, from_r), (to_c, from_c) = zip(*ri), zip(*ci)
        out[:, np.array(to_r)[:, None], np.array(to_c)[None, :]] = samples[
            :, np.array(from_r)[:, None], np.array(from_c)[None, :]
        ]
    return out


#: (matrices: name → (B, rows, cols), scalars: name → (B,), tables: name → B lists of rows)
Samples = tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[list[dict[str, Any]]]]]


def _stitch_samples(record: UnitRecord, stats: dict[str, np.ndarray], counts: Resamples) -> Samples:
    """The accuracy and pooled test residual matrices, and both donors' accuracies, per resample."""
    title = METHOD_TITLES[record.config["method"]]
    stored = record.metrics.get("matrices") or {}
    rows, cols = [str(v) for v in stats["front_layers"]], [str(v) for v in stats["end_layers"]]
    c = counts(stats["hits"].shape[-1])
    computed = {
        f"{title} accuracy": lambda: mean_samples(stats["hits"], c),
        f"{title} residual (test, pooled)": lambda: ratio_samples(stats["residual_num"], stats["residual_den"], c),
    }
    if "fit_num" in stats:  # the K fit images, resampled with the map held fixed (their own counts: K images)
        computed[f"{title} {FIT_RESIDUAL}"] = lambda: ratio_samples(
            stats["fit_num"], stats["fit_den"], counts(stats["fit_num"].shape[-1])
        )
    matrices = {name: _aligned(make(), rows, cols, stored[name]) for name, make in computed.items() if name in stored}
    scalars = {
        f"{who}_accuracy": mean_samples(stats[f"{who}_hits"], c) for who in ("front", "end") if f"{who}_hits" in stats
    }
    return matrices, scalars, {}


def _ood_samples(record: UnitRecord, stats: dict[str, np.ndarray], counts: Resamples) -> Samples:
    """Each detector's AUROC matrix (the genuine and the stitched scores of the same images, resampled
    together) and the norm-ratio matrix, per resample (:func:`~stitchkit.ood.per_sample.metric_samples`)."""
    samples = metric_samples(stats, BootstrapSpec(counts.resamples, seed=counts.seed))
    matrices: dict[str, np.ndarray] = {}
    for name, entry in (record.metrics.get("matrices") or {}).items():
        if name == NORM_RATIO_MATRIX:
            cells = samples.get("norm_ratio", {})
        elif name.startswith(AUROC_PREFIX):
            cells = samples.get(f"auroc{SEP}{name[len(AUROC_PREFIX) : -1]}", {})
        else:
            continue
        out = np.full((counts.resamples, len(entry["rows"]), len(entry["cols"])), np.nan)
        for i, front in enumerate(entry["rows"]):
            for j, end in enumerate(entry["cols"]):
                if (front, end) in cells:
                    out[:, i, j] = cells[(front, end)]
        matrices[name] = out
    return matrices, {}, {}


def _probe_samples(record: UnitRecord, stats: dict[str, np.ndarray], counts: Resamples) -> Samples:
    """The probe accuracy matrix (layers × ranks), per resample."""
    entry = (record.metrics.get("matrices") or {}).get(PROBE_MATRIX)
    if entry is None:
        return {}, {}, {}
    cells = [
        (i, j, f"hits|{layer}|{rank}") for i, layer in enumerate(entry["rows"]) for j, rank in enumerate(entry["cols"])
    ]
    present = [(i, j, stats[key]) for i, j, key in cells if key in stats]
    out = np.full((counts.resamples, len(entry["rows"]), len(entry["cols"])), np.nan)
    if present:
        means = mean_samples(np.stack([hits for _, _, hits in present]), counts(len(present[0][2])))
        out[:, [i for i, _, _ in present], [j for _, j, _ in present]] = means
    return {PROBE_MATRIX: out}, {}, {}


def _network_samples(record: UnitRecord, stats: dict[str, np.ndarray], counts: Resamples) -> Samples:
    """The network's clean test accuracy (``test_acc``), per resample."""
    return {}, {"test_acc": mean_samples(stats["hits"], counts(stats["hits"].shape[-1]))}, {}


def kept_resamples(stats: dict[str, np.ndarray], counts: Resamples) -> int:
    """On how many of these resamples a sensitivity or specificity test kept its measures' values: their
    first ``min(kept, resamples)`` (of two draws with the same seed, the smaller is the larger's prefix),
    0 when it kept none of them (another seed, or no values)."""
    from ..sensitivity.per_sample import resampled_measures  # deferred: see the note at the imports

    kept = int(stats.get("resamples", 0))
    return (
        min(kept, counts.resamples)
        if int(stats.get("seed", -1)) == counts.seed and kept > 0 and resampled_measures(stats)
        else 0
    )


def _ranking_samples(record: UnitRecord, stats: dict[str, np.ndarray], counts: Resamples) -> Samples:
    """The test's statistics table on each resample: the pooled rows of the resampled measures recomputed
    (:func:`~stitchkit.sensitivity.per_sample.resampled_agreements`), the other rows as stored; nothing
    when the test kept none of these resamples (it may keep only their first few, :func:`kept_resamples`)."""
    from ..sensitivity.per_sample import (  # deferred: see the note at the imports
        VALUES,
        resampled_agreements,
        resampled_measures,
    )

    kept = kept_resamples(stats, counts)
    if not kept:
        return {}, {}, {}
    first = {**stats, **{f"{VALUES}{m}": stats[f"{VALUES}{m}"][:kept] for m in resampled_measures(stats)}}
    agreements = resampled_agreements(first, counts(stats["hits"].shape[1])[:kept] if stats["hits"].size else None)
    tables: dict[str, list[list[dict[str, Any]]]] = {}
    for name, rows in (record.metrics.get("tables") or {}).items():
        if not name.startswith(f"{record.kind} test"):
            continue
        tables[name] = [
            [
                {**row, **{k: v for k, v in agreements[row["measure"]][b].to_dict().items() if k in row}}
                if row.get("scope") == "pooled" and row.get("measure") in agreements
                else row
                for row in rows
            ]
            for b in range(kept)
        ]
    return {}, {}, tables


SAMPLERS: dict[str, Callable[[UnitRecord, dict[str, np.ndarray], Resamples], Samples]] = {
    "stitch": _stitch_samples,
    "ood": _ood_samples,
    "probes": _probe_samples,
    "sensitivity": _ranking_samples,
    "specificity": _ranking_samples,
    "train": _network_samples,
    "network": _network_samples,
}


def matrix_samples(study_dir: str | Path, record: UnitRecord, counts: Resamples) -> Samples | None:
    """The unit's matrices (name → ``(B, rows, cols)``, laid out as stored) and scalars (``end_accuracy``,
    ``front_accuracy`` → ``(B,)``) recomputed on each resample; None without per-sample statistics."""
    sampler = SAMPLERS.get(record.kind)
    stats = load_statistics(study_dir, record) if sampler else None
    return None if stats is None else sampler(record, stats, counts)


# -- intervals -----------------------------------------------------------------------------------------
def interval_matrices(
    study_dir: str | Path, record: UnitRecord, settings: UncertaintySettings
) -> dict[str, dict[str, Any]]:
    """The unit's stored matrices, those its per-sample statistics cover with ``lower`` / ``upper`` bounds
    (percentile intervals of ``settings.bootstrap`` resamples) and the ``interval`` record; the others
    (and all of them with the bootstrap off) as stored. A stitch grid's accuracy matrix also gets the
    bounds of its relative accuracy under ``"relative"`` (:func:`_relative_bounds`)."""
    stored = dict(record.metrics.get("matrices") or {})
    if not settings.bootstrap or not stored:  # (the tests and the networks have statistics but no matrices)
        return stored
    sampled = matrix_samples(study_dir, record, Resamples(settings.bootstrap, settings.seed))
    if sampled is None:
        return stored
    matrices, scalars, _ = sampled
    for name, samples in matrices.items():
        lower, upper = percentile_interval(samples, settings.level)
        interval = {**settings.spec.record(), **({"held_fixed": FIT_HELD_FIXED} if name.endswith(FIT_RESIDUAL) else {})}
        stored[name] = {
            **stored[name],
            "lower": _nan_as_none(lower),
            "upper": _nan_as_none(upper),
            "interval": interval,
        }
        if record.kind == "stitch" and name.endswith(" accuracy") and "end_accuracy" in scalars:
            stored[name]["relative"] = _relative_bounds(samples, scalars["end_accuracy"], settings)
    return stored


def _relative_bounds(accuracy: np.ndarray, end_accuracy: np.ndarray, settings: UncertaintySettings) -> dict[str, Any]:
    """The bounds of a stitch grid's relative accuracy: its accuracy over the end network's own, both
    recomputed on the same resampled images (so their correlation is kept)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = accuracy / end_accuracy[:, None, None]
    lower, upper = percentile_interval(np.where(np.isfinite(ratios), ratios, np.nan), settings.level)
    return {"lower": _nan_as_none(lower), "upper": _nan_as_none(upper), "interval": settings.spec.record()}


#: the scalars with per-image hits, by unit kind: metric → the hits' array in the unit's statistics
SCALAR_HITS = {
    "train": {"test_acc": "hits"},
    "network": {"test_acc": "hits"},
    "stitch": {"end_accuracy": "end_hits", "front_accuracy": "front_hits"},
}


def scalar_intervals(
    study_dir: str | Path, record: UnitRecord, settings: UncertaintySettings
) -> dict[str, tuple[float, float]]:
    """The percentile intervals of the unit's accuracies that per-image hits cover (a network's ``test_acc``,
    a stitch unit's donors' ``end_accuracy`` / ``front_accuracy``); none with the bootstrap off or without hits."""
    keys = SCALAR_HITS.get(record.kind)
    stats = load_statistics(study_dir, record) if keys and settings.bootstrap else None
    if stats is None:
        return {}
    counts = Resamples(settings.bootstrap, settings.seed)
    return {
        name: tuple(
            float(v)
            for v in percentile_interval(mean_samples(stats[key], counts(stats[key].shape[-1])), settings.level)
        )
        for name, key in keys.items()
        if key in stats
    }


def accuracy_intervals(
    records: Sequence[UnitRecord], study_dir: str | Path, findings: Findings, settings: UncertaintySettings
) -> Findings:
    """Beside each ``end accuracy`` a finding's numbers show (the end network's accuracy on a grid's test
    images), its interval as ``end accuracy interval`` ([lower, upper]; :func:`scalar_intervals`). Returns
    ``findings``."""
    by_label = {r.label: r for r in records}

    def annotate(numbers: dict[str, Any]) -> None:
        record = by_label.get(numbers.get("grid")) if isinstance(numbers.get("grid"), str) else None
        if record is not None and "end accuracy" in numbers:
            bounds = scalar_intervals(study_dir, record, settings).get("end_accuracy")
            if bounds:
                numbers["end accuracy interval"] = list(bounds)

    for f in findings.findings:
        annotate(f.numbers)
        for entry in f.numbers.get("per pair") or []:
            annotate(entry)
    return findings


def _nan_as_none(grid: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if np.isfinite(v) else None for v in row] for row in grid]


# -- the robustness of the verdicts ---------------------------------------------------------------------
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


def verdict_robustness(
    records: Sequence[UnitRecord],
    study_dir: str | Path,
    findings: Findings,
    findings_settings: dict[str, Any] | None,
    settings: UncertaintySettings,
) -> Findings:
    """Annotate each finding with the fraction of ``settings.verdict_resamples`` bootstrap resamples in which
    its verdict comes out the same (every matrix, donor accuracy and test statistic the claims read
    recomputed on the resample, the same resampled images for every unit on the same test images;
    thresholds fixed), or why it was not resampled; and the end networks' accuracies it shows with their
    intervals (:func:`accuracy_intervals`). Returns ``findings``."""
    accuracy_intervals(records, study_dir, findings, settings)
    resamples = settings.verdict_resamples
    if not resamples:
        for f in findings.findings:
            f.robustness, f.robustness_note = None, "not measured ([uncertainty] verdict_resamples = 0)"
        return findings
    counts = Resamples(resamples, settings.seed)
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
                f"images{first} (seed {settings.seed}){_held_fixed(f.units, by_label, set(samples), held)}"
            )
    return findings


__all__ = [
    "Resamples",
    "SAMPLERS",
    "UncertaintySettings",
    "interval_matrices",
    "load_statistics",
    "matrix_samples",
    "mean_samples",
    "ratio_samples",
    "scalar_intervals",
    "verdict_robustness",
]
