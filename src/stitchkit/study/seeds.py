"""Seeds as a source of variance (issue 19, item 3): with three or more networks, each stitch and
similarity matrix kind's mean and standard deviation across the network pairs, cell by cell.

The pairs of one matrix kind (its name, e.g. "TLM accuracy" or "cka", and whether the pairs are
networks stitched into themselves) are grouped when their rows and columns agree; a group of at least
two pairs gets a spread. The standard deviation is the sample one (ddof = 1) over the pairs whose cell
is finite (NaN with fewer than two); it measures how much the number depends on which trained networks
(seeds) were compared, which the bootstrap over test images does not see.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .findings.view import NETWORK_KINDS, Grid, pair_name
from .store import UnitRecord

#: the unit kinds whose matrices get a spread across network pairs
SPREAD_KINDS = ("stitch", "similarity")
#: the networks a study needs before its spreads are reported
MIN_NETWORKS = 3


@dataclass
class Spread:
    """One matrix kind across network pairs."""

    kind: str
    name: str
    self_pairs: bool
    entry: dict[str, Any]  # the first pair's stored matrix (labels, kind, range)
    pairs: list[str]
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray  # pairs with a finite cell

    @property
    def title(self) -> str:
        which = "each network into itself" if self.self_pairs else "between networks"
        return f"{self.name}, {which}: mean over {len(self.pairs)} pairs"

    def mean_matrix(self) -> dict[str, Any]:
        """The mean as a study matrix entry (Matrix.to_dict-shaped)."""
        keep = ("rows", "cols", "kind", "range", "row_label", "col_label")
        return {
            **{k: self.entry[k] for k in keep if k in self.entry},
            "values": _listed(self.mean),
            "caption": (
                f"mean over the network pairs {', '.join(self.pairs)}; the right panel is the standard deviation "
                f"across "
                "them (sample, ddof = 1): how much the number depends on which networks (seeds) were compared"
            ),
        }

    def table_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "front": r,
                "end": c,
                "mean": _num(self.mean[i, j]),
                "sd": _num(self.std[i, j]),
                "pairs": int(self.count[i, j]),
            }
            for i, r in enumerate(self.entry["rows"])
            for j, c in enumerate(self.entry["cols"])
        ]


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _listed(grid: np.ndarray) -> list[list[float | None]]:
    return [[_num(v) for v in row] for row in grid]


def across_pairs(records: Sequence[UnitRecord]) -> list[Spread]:
    """The spreads of a study's finished stitch and similarity matrices (none with fewer than
    :data:`MIN_NETWORKS` networks)."""
    if sum(r.kind in NETWORK_KINDS for r in records) < MIN_NETWORKS:
        return []
    groups: dict[tuple[str, str, bool], list[tuple[UnitRecord, dict[str, Any]]]] = {}
    for r in records:
        if r.kind in SPREAD_KINDS and r.status == "done" and len(r.deps) >= 2:
            for name, entry in (r.metrics.get("matrices") or {}).items():
                groups.setdefault((r.kind, name, r.deps[0] == r.deps[-1]), []).append((r, entry))
    spreads = []
    for (kind, name, self_pairs), members in groups.items():
        first = members[0][1]
        members = [(r, e) for r, e in members if (e["rows"], e["cols"]) == (first["rows"], first["cols"])]
        grids = [Grid.from_stored(e) for _, e in members]
        if len(members) < 2 or any(g is None for g in grids):
            continue
        stack = np.stack([g.values for g in grids])
        count = np.isfinite(stack).sum(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a cell no pair has is NaN, one pair has no spread
            mean, std = np.nanmean(stack, 0), np.where(count >= 2, np.nanstd(stack, 0, ddof=1), np.nan)
        spreads.append(
            Spread(
                kind,
                name,
                self_pairs,
                first,
                [pair_name(r) if kind == "stitch" else r.label.split(" ", 1)[1] for r, _ in members],
                mean,
                std,
                count,
            )
        )
    return spreads
