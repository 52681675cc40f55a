"""The report of a sensitivity or specificity test: points (one per comparison and measure), the rank
statistics per group and for all groups, tables, CSV, JSON and the figure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StitchkitError
from ..ranks import rank_label
from ..similarity.pairs import Rep
from ..similarity.registry import measure_info
from ..utils.io import csv_text, ensure_writable_dir, json_safe, write_json_atomic, write_npz_atomic, write_text_atomic
from .comparisons import ALL, TESTS, Comparison
from .figure import plot_report
from .per_sample import PER_SAMPLE_FILE
from .stats import RankAgreement, rank_agreement


@dataclass
class GroundingReport:
    """Points (one per comparison and measure), statistics and provenance of a sensitivity or specificity test."""

    test: str
    points: list[dict[str, Any]]
    stats: list[dict[str, Any]]
    per_reference: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)
    #: what the test kept per test image (:func:`.per_sample.sample_arrays`; empty: nothing)
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def measures(self) -> list[str]:
        return list(dict.fromkeys(p["measure"] for p in self.points))

    def stat(self, measure: str, group: str = ALL, scope: str = "pooled") -> dict[str, Any]:
        for row in self.stats:
            if row["measure"] == measure and row["group"] == group and row["scope"] == scope:
                return row
        raise StitchkitError(f"no {scope} statistics for measure {measure!r} in group {group!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "info": self.info,
            "stats": self.stats,
            "per_reference": self.per_reference,
            "points": self.points,
        }

    def stats_csv(self) -> str:
        return csv_text(self.stats, STAT_COLUMNS)

    def points_csv(self) -> str:
        return csv_text(self.points, POINT_COLUMNS)

    def table(self, group: str = ALL) -> str:
        """The statistics of one group as a text table (one row per measure and scope)."""
        lines = [
            f"{'measure':<14}{'scope':<22}{'Spearman ρ':>11}{'p (1-sided)':>13}{'Kendall τ':>11}{'p (1-sided)':>13}"
            f"{'bad pairs':>11}{'refs':>6}{'pairs':>7}"
        ]
        for row in self.stats:
            if row["group"] != group:
                continue
            lines.append(
                f"{row['measure']:<14}{row['scope']:<22}{_fmt(row['spearman']):>11}{_fmt_p(row['spearman_p']):>13}"
                f"{_fmt(row['kendall']):>11}{_fmt_p(row['kendall_p']):>13}{_fmt(row['bad_fraction']):>11}{row['references']:>6}{row['n']:>7}"
            )
        return "\n".join(lines)

    def write(self, out_dir: str | Path, *, figure: bool = True) -> dict[str, Path]:
        """``<test>_stats.csv``, ``<test>_points.csv``, ``<test>.json``, ``<test>.png`` (when matplotlib is there)
        and the per-sample statistics (``per_sample.npz``, when the test kept them)."""
        folder = ensure_writable_dir(out_dir)
        paths = {
            "stats": folder / f"{self.test}_stats.csv",
            "points": folder / f"{self.test}_points.csv",
            "json": folder / f"{self.test}.json",
        }
        write_text_atomic(paths["stats"], self.stats_csv())
        write_text_atomic(paths["points"], self.points_csv())
        write_json_atomic(paths["json"], json_safe(self.to_dict()))
        if self.samples:
            paths["per_sample"] = folder / PER_SAMPLE_FILE
            write_npz_atomic(paths["per_sample"], self.samples)
        if figure:
            png = plot_report(self, folder / f"{self.test}.png")
            if png is not None:
                paths["figure"] = png
        return paths


STAT_COLUMNS = [
    "test",
    "measure",
    "group",
    "scope",
    "n",
    "references",
    "spearman",
    "spearman_p",
    "kendall",
    "kendall_p",
    "bad_fraction",
    "ordered_pairs",
]
POINT_COLUMNS = [
    "test",
    "group",
    "measure",
    "reference",
    "candidate",
    "reference_network",
    "reference_layer",
    "candidate_network",
    "candidate_layer",
    "candidate_rank",
    "value",
    "dissimilarity",
    "reference_acc",
    "candidate_acc",
    "functional_difference",
]


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _fmt_p(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2g}"


def grounding_report(
    test: str,
    comparisons: Sequence[Comparison],
    scores: Mapping[Rep, float],
    values: Mapping[str, Sequence[float]],
    info: dict[str, Any] | None = None,
) -> GroundingReport:
    """Turn measure values (``{measure: [value per comparison]}``) and functional scores (probe
    accuracy per representation) into points and statistics."""
    if test not in TESTS:
        raise StitchkitError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    missing = sorted(
        {c.reference.label() for c in comparisons if c.reference not in scores}
        | {c.candidate.label() for c in comparisons if c.candidate not in scores}
    )
    if missing:
        raise StitchkitError(f"no functional score (probe accuracy) for {', '.join(missing[:5])}")
    points, stats, per_ref = [], [], []
    f = np.array([abs(scores[c.reference] - scores[c.candidate]) for c in comparisons], dtype=np.float64)
    groups = list(dict.fromkeys(c.group for c in comparisons))
    for measure, vals in values.items():
        info_m = measure_info(measure)
        if len(vals) != len(comparisons):
            raise StitchkitError(f"measure {measure!r}: {len(vals)} values for {len(comparisons)} comparisons")
        d = np.array([info_m.dissimilarity(v) for v in vals], dtype=np.float64)
        for c, v, di, fi in zip(comparisons, vals, d, f):
            points.append(
                {
                    "test": test,
                    "group": c.group,
                    "measure": measure,
                    "reference": c.reference.label(),
                    "candidate": c.candidate.label(),
                    "reference_network": c.reference.network,
                    "reference_layer": c.reference.layer,
                    "candidate_network": c.candidate.network,
                    "candidate_layer": c.candidate.layer,
                    "candidate_rank": rank_label(c.candidate.rank),
                    "value": float(v),
                    "dissimilarity": float(di),
                    "reference_acc": float(scores[c.reference]),
                    "candidate_acc": float(scores[c.candidate]),
                    "functional_difference": float(fi),
                }
            )
        for group in groups + [ALL]:
            idx = [i for i, c in enumerate(comparisons) if group == ALL or c.group == group]
            refs = list(dict.fromkeys(comparisons[i].reference for i in idx))
            pooled = rank_agreement(d[idx], f[idx])
            stats.append(_stat_row(test, measure, group, "pooled", pooled, len(refs)))
            ref_stats: list[RankAgreement] = []
            for ref in refs:
                ridx = [i for i in idx if comparisons[i].reference == ref]
                agreement = rank_agreement(d[ridx], f[ridx])
                ref_stats.append(agreement)
                if group != ALL:
                    per_ref.append(
                        {
                            "test": test,
                            "measure": measure,
                            "group": group,
                            "reference": ref.label(),
                            **agreement.to_dict(),
                        }
                    )
            stats.append(_mean_row(test, measure, group, ref_stats, len(idx)))
    return GroundingReport(test, points, stats, per_ref, dict(info or {}))


def _stat_row(test: str, measure: str, group: str, scope: str, a: RankAgreement, references: int) -> dict[str, Any]:
    return {"test": test, "measure": measure, "group": group, "scope": scope, "references": references, **a.to_dict()}


def _mean_row(test: str, measure: str, group: str, parts: Sequence[RankAgreement], n: int) -> dict[str, Any]:
    def mean(name: str) -> float:
        vals = [getattr(p, name) for p in parts if not math.isnan(getattr(p, name))]
        return float(np.mean(vals)) if vals else math.nan

    return {
        "test": test,
        "measure": measure,
        "group": group,
        "scope": "mean_over_references",
        "references": len(parts),
        "n": n,
        "spearman": mean("spearman"),
        "spearman_p": math.nan,
        "kendall": mean("kendall"),
        "kendall_p": math.nan,
        "bad_fraction": mean("bad_fraction"),
        "ordered_pairs": int(sum(p.ordered_pairs for p in parts)),
    }
