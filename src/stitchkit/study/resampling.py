"""A unit's numbers recomputed on bootstrap resamples of its test images, from the per-sample statistics
it stored (the CONTRACT formats, :mod:`stitchkit.study.uncertainty`): a resample is a row of counts
(:class:`Resamples`), the same for every unit on the same number of test images, and
:func:`matrix_samples` recomputes every matrix, donor accuracy and test statistics table the unit
reports for all resamples at once (a mean and a ratio of sums are one matrix product each; the OOD
metrics are weighted by the counts). The intervals and the verdicts' robustness are built on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..stitch_methods import METHOD_TITLES
from ..uncertainty.bootstrap import BootstrapSpec, resample_counts
from ..uncertainty.intervals import mean_samples, ratio_samples
from ..uncertainty.stitch_scores import SEP, metric_samples
from ..utils.io import read_npz
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
AUROC_PREFIX = "AUROC ("


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
