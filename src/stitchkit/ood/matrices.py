"""Front × end matrices of a grid's OOD test (:class:`OODMatrices`): stitched accuracy and, per
detector, AUROC / AUPR / FPR95, written as the original's CSV files and one JSON."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import unknown_name
from ..results import Matrix, Provenance
from ..results.writers import write_csv, write_json
from .evaluate import StitchOODResult

MATRIX_METRICS = ("auroc", "aupr", "fpr95")
#: how each number reads as a :class:`~stitchkit.results.Matrix`, (kind, range): a high AUROC / AUPR
#: means the detector tells the stitched activations from the genuine ones (not alike), a high FPR95
#: that it cannot
METRIC_KINDS = {"accuracy": ("accuracy", (0.0, 1.0)), "auroc": ("distance", (0.0, 1.0)), "aupr": ("distance", (0.0, 1.0)),
                "fpr95": ("similarity", (0.0, 1.0))}
#: the corner cell of the matrices' CSV files
CSV_CORNER = "front \\ end"


class OODMatrices:
    """Front × end matrices of stitched accuracy and, per detector, AUROC / AUPR / FPR95.

    Missing pairs are NaN (the original filled them with 0). ``aupr`` and ``fpr95`` follow the metric
    convention of the results (recorded in the JSON).
    """

    def __init__(self, front_layers: Sequence[str], end_layers: Sequence[str]):
        self.front_layers, self.end_layers = list(front_layers), list(end_layers)
        self.results: dict[tuple[str, str], StitchOODResult] = {}

    def add(self, front_layer: str, end_layer: str, result: StitchOODResult) -> None:
        if front_layer not in self.front_layers:
            self.front_layers.append(front_layer)
        if end_layer not in self.end_layers:
            self.end_layers.append(end_layer)
        self.results[(front_layer, end_layer)] = result

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
                else:
                    m = r.metrics.get(detector or "energy")
                    row.append(getattr(m, metric) if m is not None else math.nan)
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        conventions = {}
        for r in self.results.values():
            for name, m in r.metrics.items():
                conventions.setdefault(name, m.convention)
        return {
            "front_layers": self.front_layers, "end_layers": self.end_layers, "accuracy": self.matrix("accuracy"),
            "detectors": {name: {metric: self.matrix(metric, name) for metric in MATRIX_METRICS} for name in self.detectors},
            "conventions": conventions,
        }

    def to_matrix(self, metric: str = "accuracy", detector: str | None = None, *, provenance: Provenance | None = None) -> Matrix:
        """Front × end :class:`~stitchkit.results.Matrix` of ``accuracy`` or of a detector's ``auroc``,
        ``aupr`` or ``fpr95`` (default: the first detector), with ``provenance`` (default: the metric
        conventions)."""
        if metric not in METRIC_KINDS:
            raise unknown_name("OOD metric", metric, METRIC_KINDS)
        if metric != "accuracy":
            detector = detector or (self.detectors or ["energy"])[0]
            if detector not in self.detectors:
                raise unknown_name("detector of this test", detector, self.detectors)
        kind, value_range = METRIC_KINDS[metric]
        name = "stitched accuracy" if metric == "accuracy" else f"{metric.upper()} ({detector})"
        if provenance is None:
            provenance = Provenance(f"OOD test of stitches: {name}",
                                    conventions={f"metrics ({k})": text for k, text in self.to_dict()["conventions"].items()})
        return Matrix(self.front_layers, self.end_layers, self.matrix(metric, detector), kind=kind, range=value_range, name=name,
                      provenance=provenance)

    def _csv(self, matrix: list[list[float]]) -> list[dict[str, Any]]:
        """The rows of one matrix's CSV: the front layer, then each end layer's value to 6 digits (empty where missing)."""
        return [{CSV_CORNER: f, **{e: "" if math.isnan(v) else f"{v:.6g}" for e, v in zip(self.end_layers, row)}}
                for f, row in zip(self.front_layers, matrix)]

    def save(self, out_dir: str | Path, extra: Mapping[str, Any] | None = None) -> list[Path]:
        """``accuracy.csv``, ``<metric>_<detector>.csv`` and ``ood_matrices.json`` in ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        columns = [CSV_CORNER, *self.end_layers]
        paths = [out_dir / "accuracy.csv"]
        write_csv(paths[0], self._csv(self.matrix("accuracy")), columns)
        for name in self.detectors:
            for metric in MATRIX_METRICS:
                path = out_dir / f"{metric}_{name}.csv"
                write_csv(path, self._csv(self.matrix(metric, name)), columns)
                paths.append(path)
        data = {**self.to_dict(), **dict(extra or {})}
        write_json(out_dir / "ood_matrices.json", data)
        paths.append(out_dir / "ood_matrices.json")
        return paths

    def format(self) -> str:
        """The matrices as text, like the original's printout (rows = front, columns = end)."""
        def block(title: str, matrix: list[list[float]]) -> list[str]:
            width = max([len(e) for e in self.end_layers] + [8])
            lines = [title, " " * 12 + "".join(f"{e:>{width + 1}}" for e in self.end_layers)]
            for f, row in zip(self.front_layers, matrix):
                lines.append(f"{f:<12}" + "".join(f"{'—' if math.isnan(v) else f'{v:.4f}':>{width + 1}}" for v in row))
            return lines

        lines = block("STITCHING ACCURACY", self.matrix("accuracy"))
        for name in self.detectors:
            for metric, label in (("auroc", "AUROC"), ("aupr", "AUPR"), ("fpr95", "FPR95")):
                lines += [""] + block(f"STITCHING OOD Detection {label} ({name})", self.matrix(metric, name))
        return "\n".join(lines)
