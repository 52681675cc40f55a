"""Front × end matrices of a grid's OOD test (:class:`OODMatrices`): stitched accuracy and, per
detector, AUROC / AUPR / FPR95, written as the original's CSV files and one JSON."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..utils.io import json_safe, write_json_atomic, write_text_atomic
from .evaluate import StitchOODResult

MATRIX_METRICS = ("auroc", "aupr", "fpr95")


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

    def _csv(self, matrix: list[list[float]]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["front \\ end", *self.end_layers])
        for f, row in zip(self.front_layers, matrix):
            writer.writerow([f, *["" if math.isnan(v) else f"{v:.6g}" for v in row]])
        return buffer.getvalue()

    def save(self, out_dir: str | Path, extra: Mapping[str, Any] | None = None) -> list[Path]:
        """``accuracy.csv``, ``<metric>_<detector>.csv`` and ``ood_matrices.json`` in ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / "accuracy.csv"]
        write_text_atomic(paths[0], self._csv(self.matrix("accuracy")))
        for name in self.detectors:
            for metric in MATRIX_METRICS:
                path = out_dir / f"{metric}_{name}.csv"
                write_text_atomic(path, self._csv(self.matrix(metric, name)))
                paths.append(path)
        data = {**self.to_dict(), **dict(extra or {})}
        write_json_atomic(out_dir / "ood_matrices.json", json_safe(data))
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
