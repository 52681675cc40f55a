"""What the findings read from a study's unit records: layer grids, the stitch grids of network pairs,
their OOD tests, and why a unit a claim needs is not there (not planned, not computed yet, failed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...stitch_methods import METHOD_TITLES
from ..artifact_names import artifact_stem
from ..store import UnitRecord
from .model import Link

NETWORK_KINDS = ("train", "network")


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Grid:
    """A stored layer matrix (rows: front layers, cols: end layers); missing cells are NaN."""

    rows: tuple[str, ...]
    cols: tuple[str, ...]
    values: np.ndarray

    @classmethod
    def from_stored(cls, entry: dict[str, Any] | None) -> Grid | None:
        """None when the matrix is absent or has no finite value (it was not computed)."""
        if not entry:
            return None
        values = np.array([[v if finite(v) else math.nan for v in row] for row in entry["values"]], dtype=float)
        values = values.reshape(len(entry["rows"]), len(entry["cols"]))
        if not np.isfinite(values).any():
            return None
        return cls(tuple(entry["rows"]), tuple(entry["cols"]), values)

    def get(self, row: str, col: str) -> float:
        if row not in self.rows or col not in self.cols:
            return math.nan
        return float(self.values[self.rows.index(row), self.cols.index(col)])

    def scaled(self, factor: float) -> Grid:
        return Grid(self.rows, self.cols, self.values * factor)

    def square(self) -> Grid | None:
        """The sub-grid of the layers that are both front and end layers (in depth order, index =
        position), on which "corresponding layer" (i == j) is defined; None when they share none."""
        common = [r for r in self.rows if r in self.cols]
        if not common:
            return None
        return Grid(
            tuple(common), tuple(common), np.array([[self.get(r, c) for c in common] for r in common], dtype=float)
        )

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers of a square grid."""
        return self.rows


@dataclass(frozen=True)
class StitchGrid:
    """One finished stitch unit: relative accuracy a[i, j] = A[i, j] / acc_end, and the DM residual."""

    record: UnitRecord
    accuracy: Grid | None  # relative
    residual: Grid | None
    end_accuracy: float | None
    problem: str | None  # why the accuracies cannot be used

    @classmethod
    def of(cls, record: UnitRecord) -> StitchGrid:
        title = METHOD_TITLES[record.config["method"]]
        matrices = record.metrics.get("matrices") or {}
        absolute = Grid.from_stored(matrices.get(f"{title} accuracy"))
        residual = Grid.from_stored(matrices.get(f"{title} residual (test, pooled)"))
        end = record.metrics.get("end_accuracy")
        problem = None
        if not finite(end) or end <= 0:
            problem, accuracy = f"{record.label} has no end-network accuracy to compare with", None
        elif absolute is None:
            problem, accuracy = f"{record.label} has no accuracy matrix", None
        else:
            accuracy = absolute.scaled(1.0 / end)
        return cls(record, accuracy, residual, end if finite(end) else None, problem)

    @property
    def label(self) -> str:
        return self.record.label

    @property
    def pair(self) -> str:
        """The networks of the grid ("resnet18 s0→resnet18 s1"): its label without "stitch <method>"."""
        return pair_name(self.record)

    @property
    def title(self) -> str:
        return METHOD_TITLES[self.record.config["method"]]

    def links(self, *what: str) -> list[Link]:
        """Links to this grid's ``accuracy`` and/or ``residual`` heatmaps, those it has."""
        names = {"accuracy": f"{self.title} accuracy", "residual": f"{self.title} residual (test, pooled)"}
        stored = self.record.metrics.get("matrices") or {}
        return [unit_link(self.record, names[w]) for w in what or ("accuracy",) if names[w] in stored]


def pair_name(record: UnitRecord) -> str:
    """The networks a stitch or OOD unit is about: its label without the kind (and the method)."""
    words = record.label.split(" ", 2 if record.kind == "stitch" else 1)
    return words[-1]


def unit_link(record: UnitRecord, name: str, figure: bool = True) -> Link:
    return Link(f"{record.label}: {name}", artifact_stem(record.kind, record.label, name), figure)


class StudyView:
    """The planned units of a study (in plan order), with the look-ups the claims need."""

    def __init__(self, records: Sequence[UnitRecord]):
        self.records = list(records)
        self.by_id = {r.id: r for r in self.records}

    def of_kind(self, kind: str) -> list[UnitRecord]:
        return [r for r in self.records if r.kind == kind]

    def same_architecture(self, a: str, b: str) -> bool:
        """Whether two network units have the same model and options (False when either is unknown)."""
        na, nb = self.by_id.get(a), self.by_id.get(b)
        if na is None or nb is None or na.kind not in NETWORK_KINDS or nb.kind not in NETWORK_KINDS:
            return False
        return (na.config.get("model"), na.config.get("options")) == (nb.config.get("model"), nb.config.get("options"))

    def stitch_pairs(self, methods: Sequence[str], self_pairs: bool = False) -> list[tuple[UnitRecord, ...]]:
        """Per network pair (in plan order), its stitch units of ``methods`` (pairs lacking one are left
        out). ``self_pairs``: a network stitched into itself; otherwise two different networks of the
        same architecture."""
        by_pair: dict[tuple[str, ...], dict[str, UnitRecord]] = {}
        for r in self.of_kind("stitch"):
            pair = tuple(r.deps)
            if len(pair) != 2 or (pair[0] == pair[1]) != self_pairs:
                continue
            if not self_pairs and not self.same_architecture(*pair):
                continue
            by_pair.setdefault(pair, {}).setdefault(r.config.get("method"), r)
        return [tuple(units[m] for m in methods) for units in by_pair.values() if all(m in units for m in methods)]

    def ood_of(self, stitch: UnitRecord) -> UnitRecord | None:
        return next((r for r in self.of_kind("ood") if r.deps and r.deps[0] == stitch.id), None)

    def single(self, kind: str) -> UnitRecord | None:
        units = self.of_kind(kind)
        return units[0] if units else None


def stitch_hint(*methods: str, self_pairs: bool = False) -> str:
    """Which config keys add the stitch units a claim needs."""
    wanted = " and ".join(f'"{m}"' for m in methods)
    pairs = (
        'stitching.pairs = "reference_and_self" (or "self")'
        if self_pairs
        else 'stitching.pairs between two networks ("reference", "first", "all" or "reference_and_self")'
    )
    return f"[stitching] enabled = true, {wanted} in stitching.methods and {pairs}"


def available(
    candidates: Sequence[tuple[UnitRecord, ...]], what: str, how_to_add: str
) -> tuple[list[tuple[UnitRecord, ...]], str | None]:
    """The candidates whose units are all finished, in order, or why there is none: the study has no
    such units (and the config keys that add them), or they are not computed yet (pending, running or
    failed, each named)."""
    if not candidates:
        return [], f"the study has no {what} (add it with {how_to_add})"
    done = [c for c in candidates if all(r.status == "done" for r in c)]
    if done:
        return done, None
    waiting = list({r.id: r for c in candidates for r in c if r.status != "done"}.values())
    states = ", ".join(
        f"{r.label}: {r.status}" + (f" ({_short(r.error)})" if r.status == "failed" and r.error else "")
        for r in waiting
    )
    return [], f"{what} not computed yet ({states}; run the study to compute it)"


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
