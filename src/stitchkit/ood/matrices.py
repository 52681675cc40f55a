"""Front × end matrices of a grid's OOD test (:class:`OODMatrices`): stitched accuracy and, per
detector, AUROC / AUPR / FPR95, written as the original's CSV files and one JSON; beside them what
lets a reader interpret an AUROC: the norm ratio of the stitched to the genuine activations
(:data:`~stitchkit.results.ood_scores.NORM_DEFINITION`), each detector's median score of the stitched
activations, and both sides' score distributions (:meth:`OODMatrices.score_rows`, drawn per end layer
by :func:`stitchkit.results.ood_scores.score_figure`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import unknown_name
from ..results import Matrix, Provenance
from ..utils.io import write_csv_atomic, write_json_atomic
from .stitch_record import NORM_DEFINITION, StitchOODResult

MATRIX_METRICS = ("auroc", "aupr", "fpr95")
#: per detector, beside :data:`MATRIX_METRICS`: the median outlier score of the stitched activations
SCORE_METRICS = ("median_score",)
#: how each number reads as a :class:`~stitchkit.results.Matrix`, (kind, range): a high AUROC / AUPR
#: means the detector tells the stitched activations from the genuine ones (not alike), a high FPR95
#: that it cannot
METRIC_KINDS = {
    "accuracy": ("accuracy", (0.0, 1.0)),
    "auroc": ("distance", (0.0, 1.0)),
    "aupr": ("distance", (0.0, 1.0)),
    "fpr95": ("similarity", (0.0, 1.0)),
    "norm_ratio": ("ratio", (0.0, None)),
    "median_score": ("distance", None),
}
#: the titles of the matrices that are not a detector's metric
TITLES = {"accuracy": "stitched accuracy", "norm_ratio": "norm ratio (stitched / genuine)"}
#: the corner cell of the matrices' CSV files
CSV_CORNER = "front \\ end"


class OODMatrices:
    """Front × end matrices of stitched accuracy and, per detector, AUROC / AUPR / FPR95.

    Missing pairs are NaN (the original filled them with 0). ``aupr`` and ``fpr95`` follow the metric
    convention of the results (recorded in the JSON). ``norm_ratio`` is each stitch's
    :attr:`~.stitch_record.StitchOODResult.norm_ratio`, a detector's ``median_score`` the median of its
    scores of the stitched activations (the genuine ones' per end layer: :meth:`genuine`).

    With a bootstrap (:func:`.per_sample.attach_intervals`), ``bounds`` holds the front × end lower and
    upper bounds of the norm ratio (key ``"norm_ratio"``) and of each detector's AUROC, AUPR and FPR95
    (``"auroc|<detector>"``, …), and ``interval`` how they were made; :meth:`to_matrix` carries them
    and :meth:`ci` returns them.
    """

    def __init__(self, front_layers: Sequence[str], end_layers: Sequence[str]):
        self.front_layers, self.end_layers = list(front_layers), list(end_layers)
        self.results: dict[tuple[str, str], StitchOODResult] = {}
        self.bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.interval: dict[str, Any] = {}

    def add(self, front_layer: str, end_layer: str, result: StitchOODResult) -> None:
        if front_layer not in self.front_layers:
            self.front_layers.append(front_layer)
        if end_layer not in self.end_layers:
            self.end_layers.append(end_layer)
        self.results[(front_layer, end_layer)] = result

    def set_intervals(self, bounds: Mapping[str, tuple[np.ndarray, np.ndarray]], interval: Mapping[str, Any]) -> None:
        """Keep the bounds of :func:`~stitchkit.uncertainty.stitch_scores.interval_grids` (made for the current layers,
        in their order)
        and their record (:meth:`~stitchkit.uncertainty.bootstrap.BootstrapSpec.record`)."""
        self.bounds, self.interval = dict(bounds), dict(interval)

    def bounds_of(self, metric: str, detector: str | None = None) -> tuple[list[list[float]], list[list[float]]] | None:
        """The (lower, upper) grids of ``metric`` (a detector's, default the first), or None without them."""
        if metric not in TITLES:
            detector = detector or (self.detectors or ["energy"])[0]
        found = self.bounds.get(metric if metric in TITLES else f"{metric}|{detector}")
        return (
            None
            if found is None
            else (np.asarray(found[0], dtype=float).tolist(), np.asarray(found[1], dtype=float).tolist())
        )

    def ci(self, metric: str = "auroc", detector: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The confidence intervals of ``metric`` (a detector's, default the first) as front × end
        ``(lower, upper)`` arrays (:meth:`stitchkit.results.Matrix.ci`)."""
        return self.to_matrix(metric, detector).ci()

    @property
    def detectors(self) -> list[str]:
        names: list[str] = []
        for r in self.results.values():
            names += [n for n in r.metrics if n not in names]
        return names

    def matrix(self, metric: str, detector: str | None = None) -> list[list[float]]:
        out = []
        for f in self.front_layers:
            row = []
            for e in self.end_layers:
                r = self.results.get((f, e))
                if r is None:
                    row.append(math.nan)
                elif metric == "accuracy":
                    row.append(r.accuracy)
                elif metric == "norm_ratio":
                    row.append(r.norm_ratio)
                else:
                    m = r.metrics.get(detector or "energy")
                    row.append(
                        math.nan
                        if m is None
                        else _median(m.ood_score_summary)
                        if metric == "median_score"
                        else getattr(m, metric)
                    )
            out.append(row)
        return out

    def genuine(self, end_layer: str) -> dict[str, Any] | None:
        """The genuine side of ``end_layer`` (shared by all its stitches): ``{"norm": summary, "scores":
        {detector: summary}}`` as dicts (None where a summary is not recorded), or None without a stitch there."""
        r = next((r for (_, e), r in self.results.items() if e == end_layer), None)
        if r is None:
            return None
        return {
            "norm": None if r.genuine_norm is None else r.genuine_norm.to_dict(),
            "scores": {
                name: None if m.id_score_summary is None else m.id_score_summary.to_dict()
                for name, m in r.metrics.items()
            },
        }

    def score_rows(self) -> list[dict[str, Any]]:
        """Each detector's score distribution, per end layer: the genuine activations' row, then one row
        per stitch into that layer with its AUROC (columns :data:`~stitchkit.results.ood_scores.SCORE_COLUMNS`; outlier
        scores,
        higher = more OOD)."""
        rows = []
        for e in self.end_layers:
            stitches = [(f, self.results[(f, e)]) for f in self.front_layers if (f, e) in self.results]
            genuine_scores = (self.genuine(e) or {}).get("scores", {})
            for name in self.detectors:
                genuine = genuine_scores.get(name)
                if genuine is not None:
                    rows.append(
                        {
                            "end_layer": e,
                            "front_layer": None,
                            "detector": name,
                            "activations": "genuine",
                            **genuine,
                            "auroc": None,
                        }
                    )
                for f, r in stitches:
                    m = r.metrics.get(name)
                    if m is not None and m.ood_score_summary is not None:
                        rows.append(
                            {
                                "end_layer": e,
                                "front_layer": f,
                                "detector": name,
                                "activations": "stitched",
                                **m.ood_score_summary.to_dict(),
                                "auroc": m.auroc,
                            }
                        )
        return rows

    def to_dict(self) -> dict[str, Any]:
        conventions = {}
        for r in self.results.values():
            for name, m in r.metrics.items():
                conventions.setdefault(name, m.convention)
        return {
            "front_layers": self.front_layers,
            "end_layers": self.end_layers,
            "accuracy": self.matrix("accuracy"),
            "norm_ratio": self.matrix("norm_ratio"),
            "detectors": {
                name: {metric: self.matrix(metric, name) for metric in MATRIX_METRICS + SCORE_METRICS}
                for name in self.detectors
            },
            "genuine": {e: genuine for e in self.end_layers if (genuine := self.genuine(e)) is not None},
            "conventions": conventions,
            "norm_ratio_definition": NORM_DEFINITION,
            **(
                {
                    "intervals": {
                        key: {"lower": np.asarray(lo).tolist(), "upper": np.asarray(hi).tolist()}
                        for key, (lo, hi) in self.bounds.items()
                    },
                    "interval": self.interval,
                }
                if self.bounds
                else {}
            ),
        }

    def to_matrix(
        self, metric: str = "accuracy", detector: str | None = None, *, provenance: Provenance | None = None
    ) -> Matrix:
        """Front × end :class:`~stitchkit.results.Matrix` of ``accuracy``, ``norm_ratio`` or of a
        detector's ``auroc``, ``aupr``, ``fpr95`` or ``median_score`` (default: the first detector), with
        ``provenance`` (default: the metric conventions)."""
        if metric not in METRIC_KINDS:
            raise unknown_name("OOD metric", metric, METRIC_KINDS)
        if metric not in TITLES:
            detector = detector or (self.detectors or ["energy"])[0]
            if detector not in self.detectors:
                raise unknown_name("detector of this test", detector, self.detectors)
        kind, value_range = METRIC_KINDS[metric]
        name = TITLES.get(metric) or (
            f"median score ({detector})" if metric == "median_score" else f"{metric.upper()} ({detector})"
        )
        if provenance is None:
            conventions = {f"metrics ({k})": text for k, text in self.to_dict()["conventions"].items()}
            provenance = Provenance(
                f"OOD test of stitches: {name}", conventions={**conventions, "norm ratio": NORM_DEFINITION}
            )
        bounds = self.bounds_of(metric, detector)
        lower, upper = bounds if bounds is not None else (None, None)
        return Matrix(
            self.front_layers,
            self.end_layers,
            self.matrix(metric, detector),
            kind=kind,
            range=value_range,
            name=name,
            provenance=provenance,
            lower=lower,
            upper=upper,
            interval=self.interval if bounds is not None else {},
        )

    def _csv(self, matrix: list[list[float]]) -> list[dict[str, Any]]:
        """The rows of one matrix's CSV: the front layer, then each end layer's value to 6 digits (empty where
        missing)."""
        return [
            {CSV_CORNER: f, **{e: "" if math.isnan(v) else f"{v:.6g}" for e, v in zip(self.end_layers, row)}}
            for f, row in zip(self.front_layers, matrix)
        ]

    def save(self, out_dir: str | Path, extra: Mapping[str, Any] | None = None) -> list[Path]:
        """``accuracy.csv``, ``norm_ratio.csv``, ``<metric>_<detector>.csv`` (``median_score`` too) and
        ``ood_matrices.json`` in ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        columns = [CSV_CORNER, *self.end_layers]
        paths = [out_dir / "accuracy.csv", out_dir / "norm_ratio.csv"]
        write_csv_atomic(paths[0], self._csv(self.matrix("accuracy")), columns)
        write_csv_atomic(paths[1], self._csv(self.matrix("norm_ratio")), columns)
        for name in self.detectors:
            for metric in MATRIX_METRICS + SCORE_METRICS:
                path = out_dir / f"{metric}_{name}.csv"
                write_csv_atomic(path, self._csv(self.matrix(metric, name)), columns)
                paths.append(path)
        data = {**self.to_dict(), **dict(extra or {})}
        write_json_atomic(out_dir / "ood_matrices.json", data)
        paths.append(out_dir / "ood_matrices.json")
        return paths

    def format(self, full: bool = True) -> str:
        """The matrices as text, like the original's printout (rows = front, columns = end); with
        intervals (:attr:`bounds`), each cell shows its bounds after the value. ``full=False``: only the
        stitching accuracy and each detector's AUROC (the summary ``stitchkit ood`` prints by default)."""
        level = self.interval.get("level")
        note = f" [{100 * level:g}% interval]" if level is not None else ""

        def block(
            title: str, metric: str, detector: str | None = None, genuine: list[float] | None = None
        ) -> list[str]:
            matrix, bounds = self.matrix(metric, detector), self.bounds_of(metric, detector)
            cells = [
                [_cell(v, None if bounds is None else (bounds[0][i][j], bounds[1][i][j])) for j, v in enumerate(row)]
                for i, row in enumerate(matrix)
            ]
            if genuine is not None:
                cells.append([_cell(v) for v in genuine])
            width = max([len(e) for e in self.end_layers] + [len(c) for row in cells for c in row] + [8])
            labels = self.front_layers + (["genuine"] if genuine is not None else [])
            lines = [
                title + (note if bounds is not None else ""),
                " " * 12 + "".join(f"{e:>{width + 1}}" for e in self.end_layers),
            ]
            lines += [f"{f:<12}" + "".join(f"{c:>{width + 1}}" for c in row) for f, row in zip(labels, cells)]
            return lines

        lines = block("STITCHING ACCURACY", "accuracy")
        if not full:
            for name in self.detectors:
                lines += [""] + block(f"STITCHING OOD Detection AUROC ({name})", "auroc", name)
            return "\n".join(lines)
        lines += [""] + block(
            "NORM RATIO (mean L2 norm of a sample's whole activation at the end layer, stitched / genuine)",
            "norm_ratio",
        )
        for name in self.detectors:
            for metric, label in (("auroc", "AUROC"), ("aupr", "AUPR"), ("fpr95", "FPR95")):
                lines += [""] + block(f"STITCHING OOD Detection {label} ({name})", metric, name)
            genuine = [_median((self.genuine(e) or {}).get("scores", {}).get(name)) for e in self.end_layers]
            lines += [""] + block(
                f"MEDIAN SCORE ({name}; higher = more OOD; last row: genuine activations)",
                "median_score",
                name,
                genuine,
            )
        return "\n".join(lines)


def _cell(value: float, bounds: tuple[float, float] | None = None) -> str:
    """One printed cell: the value to 4 decimals (— where missing), with its interval where it has one."""
    if math.isnan(value):
        return "—"
    if bounds is None or any(b is None or math.isnan(b) for b in bounds):
        return f"{value:.4f}"
    return f"{value:.4f} [{bounds[0]:.4f}, {bounds[1]:.4f}]"


def _median(summary: Any) -> float:
    """The median of a :class:`~.metrics.ValueSummary` or of its dict (NaN for None)."""
    if summary is None:
        return math.nan
    return float(summary["q50"] if isinstance(summary, Mapping) else summary.q50)
