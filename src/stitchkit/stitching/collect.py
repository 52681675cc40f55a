"""Front × end matrices from a folder of stitch runs (the original's ``exec_collect_results.py``).

The original parsed ``summary.txt`` by splitting on spaces, ordered folders by mtime (a newer run of a
pair silently replaced an older one), filled missing pairs with 0 and crashed on models without a
hard-coded layer list. Here every run's ``result.json`` is read; runs are grouped by experiment (both
models by content, dataset and every option except the layer pair: the ``config_key``), so one folder
may hold, e.g., a DM grid and a TLM grid side by side; rows and columns follow the networks' own layer
order (recorded in each result); a missing pair is NaN.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..choices import COLLECT_METRICS
from ..errors import StitchkitError, unknown_name
from ..results import Matrix, Provenance
from ..uncertainty.bootstrap import DEFAULT_LEVEL, BootstrapSpec
from ..utils.io import csv_text, ensure_writable_dir, write_csv_atomic, write_json_atomic
from .intervals import INTERVAL_FIELDS, attach_intervals
from .records import RESULT_FILE, StitchResult

METRICS = COLLECT_METRICS
#: how each per-pair number reads as a :class:`~stitchkit.results.Matrix`: (kind, range)
METRIC_KINDS = {
    "accuracy": ("accuracy", (0.0, 1.0)),
    "loss": ("distance", (0.0, None)),
    "residual": ("distance", (0.0, None)),
    "residual_batch_mean": ("distance", (0.0, None)),
    "fit_residual": ("distance", (0.0, None)),
    "dm_fit_residual": ("distance", (0.0, None)),
}


@dataclass
class ResultMatrices:
    """One experiment's matrices: ``metrics[name][i, j]`` is front layer ``front_layers[i]`` stitched to
    end layer ``end_layers[j]`` (NaN where no run exists)."""

    label: str
    config_key: str
    front_layers: list[str]
    end_layers: list[str]
    metrics: dict[str, np.ndarray]
    front: dict[str, Any]
    end: dict[str, Any]
    dataset: str
    options: dict[str, Any]
    run_dirs: dict[str, str] = field(default_factory=dict)
    #: with a bootstrap: ``metric -> (lower, upper)`` matrices (NaN where a run has no per-image statistics)
    bounds: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    interval: dict[str, Any] = field(default_factory=dict)

    @property
    def n_runs(self) -> int:
        return len(self.run_dirs)

    def to_dict(self) -> dict[str, Any]:
        """JSON data; missing pairs are ``null``."""
        return {
            "label": self.label,
            "config_key": self.config_key,
            "dataset": self.dataset,
            "front": {k: self.front.get(k) for k in ("path", "model_type", "fingerprint")},
            "end": {k: self.end.get(k) for k in ("path", "model_type", "fingerprint")},
            "options": self.options,
            "front_layers": self.front_layers,
            "end_layers": self.end_layers,
            "n_runs": self.n_runs,
            "metrics": {name: _nullable(matrix) for name, matrix in self.metrics.items()},
            **(
                {
                    "bounds": {
                        name: {"lower": _nullable(lo), "upper": _nullable(hi)} for name, (lo, hi) in self.bounds.items()
                    },
                    "interval": self.interval,
                }
                if self.bounds
                else {}
            ),
        }

    def matrix(self, metric: str = "accuracy") -> Matrix:
        """One metric as a :class:`~stitchkit.results.Matrix` with the experiment's provenance."""
        if metric not in self.metrics:
            raise unknown_name("collected metric", metric, self.metrics)
        kind, value_range = METRIC_KINDS[metric]
        name = f"{metric.replace('_', ' ')}: {self.label}"
        provenance = Provenance(
            name,
            {"front": self.front.get("fingerprint"), "end": self.end.get("fingerprint")},
            {"dataset": self.dataset, "config_key": self.config_key, **self.options},
        )
        extra = {}
        if metric in self.bounds:
            extra = {"lower": self.bounds[metric][0], "upper": self.bounds[metric][1], "interval": self.interval}
        return Matrix(
            self.front_layers,
            self.end_layers,
            self.metrics[metric],
            kind=kind,
            range=value_range,
            name=name,
            provenance=provenance,
            **extra,
        )

    def csv_rows(self, metric: str, values: np.ndarray | None = None) -> list[dict[str, Any]]:
        """The rows of ``<metric>.csv``: the front layer, then each end layer's value (``repr``, exact; ``nan`` where
        missing);
        ``values`` instead of the metric's (its bounds)."""
        values = self.metrics[metric] if values is None else values
        return [
            {
                "front\\end": layer,
                **{e: "nan" if math.isnan(v) else repr(float(v)) for e, v in zip(self.end_layers, row)},
            }
            for layer, row in zip(self.front_layers, values)
        ]

    def csv(self, metric: str) -> str:
        return csv_text(self.csv_rows(metric), ["front\\end", *self.end_layers])

    def table(self, metric: str = "accuracy", digits: int = 4, values: np.ndarray | None = None) -> str:
        """A fixed-width text table (rows = front layers, columns = end layers) of the metric (or of ``values``)."""
        values = self.metrics[metric] if values is None else values
        cells = [[("nan" if math.isnan(v) else f"{v:.{digits}f}") for v in row] for row in values]
        corner = "front \\ end"
        first = max([len(corner)] + [len(x) for x in self.front_layers])
        width = max([len(x) for x in self.end_layers] + [digits + 3])
        lines = [f"{corner:<{first}}  " + "  ".join(f"{e:>{width}}" for e in self.end_layers)]
        for layer, row in zip(self.front_layers, cells):
            lines.append(f"{layer:<{first}}  " + "  ".join(f"{c:>{width}}" for c in row))
        return "\n".join(lines)


def _nullable(matrix: np.ndarray) -> list[list[float | None]]:
    return [[None if math.isnan(v) else float(v) for v in row] for row in matrix.tolist()]


def _label(result: StitchResult) -> str:
    o = result.options
    text = (
        f"{result.front.get('model_type')} -> {result.end.get('model_type')} on {result.dataset}: "
        f"{o.get('stitching_type')} init={o.get('init')} epochs={o.get('epochs')} K={o.get('fit_samples')} "
        f"seed={o.get('seed')}"
    )
    ranks = [f"{k}={o[k]}" for k in ("front_stitch_rank", "front_pinv_rank") if o.get(k)]
    if ranks:
        text += " " + " ".join(ranks) + f" ({o.get('low_rank_mode')})"
    return text


def find_results(results_dir: str | os.PathLike) -> list[Path]:
    """Every finished run folder under ``results_dir`` (hidden and partial folders skipped), sorted."""
    root = Path(results_dir)
    if not root.is_dir():
        raise StitchkitError(f"results folder {str(root)!r} does not exist")
    found = []
    for path in root.rglob(RESULT_FILE):
        rel = path.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        found.append(path.parent)
    return sorted(found)


def _ordered(names: set[str], order: list[str]) -> list[str]:
    position = {n: i for i, n in enumerate(order)}
    return sorted(names, key=lambda n: (position.get(n, len(order)), n))


def collect_results(
    results_dir: str | os.PathLike,
    *,
    all_layers: bool = False,
    bootstrap: int = 0,
    level: float = DEFAULT_LEVEL,
    seed: int | None = None,
) -> list[ResultMatrices]:
    """Group the runs under ``results_dir`` by experiment and build their matrices.

    Rows/columns are the layers that occur in the group's runs, in the networks' layer order; with
    ``all_layers`` every stitchable layer of the two networks. With ``bootstrap`` resamples the
    accuracy and residual matrices get the bounds of percentile intervals at ``level`` from the runs'
    ``per_sample.npz`` (seeded with ``seed``, default each experiment's own seed; :mod:`.intervals`).
    """
    if bootstrap < 0:
        raise StitchkitError(f"--bootstrap must be 0 (off) or a number of resamples, got {bootstrap}")
    runs = find_results(results_dir)
    if not runs:
        raise StitchkitError(f"no finished stitch runs (folders with {RESULT_FILE}) under {str(results_dir)!r}")
    groups: dict[str, list[StitchResult]] = {}
    for run_dir in runs:
        result = StitchResult.load(run_dir)
        groups.setdefault(result.config_key, []).append(result)
    out = []
    for key, results in groups.items():
        first = results[0]
        front_order = list(first.front.get("layers") or [])
        end_order = list(first.end.get("layers") or [])
        front_layers = (
            front_order if all_layers and front_order else _ordered({r.front_layer for r in results}, front_order)
        )
        end_layers = end_order if all_layers and end_order else _ordered({r.end_layer for r in results}, end_order)
        fi = {n: i for i, n in enumerate(front_layers)}
        ei = {n: j for j, n in enumerate(end_layers)}
        metrics = {m: np.full((len(front_layers), len(end_layers)), np.nan) for m in METRICS}
        run_dirs = {}
        for r in results:
            for m in METRICS:
                value = getattr(r, m)
                metrics[m][fi[r.front_layer], ei[r.end_layer]] = math.nan if value is None else float(value)
            run_dirs[f"{r.front_layer}|{r.end_layer}"] = r.run_dir or ""
        group = ResultMatrices(
            _label(first),
            key,
            front_layers,
            end_layers,
            metrics,
            first.front,
            first.end,
            first.dataset,
            first.options,
            run_dirs,
        )
        if bootstrap:
            spec = BootstrapSpec(bootstrap, level, seed if seed is not None else int(first.options.get("seed") or 0))
            _add_bounds(group, results, spec, fi, ei)
        out.append(group)
    labels = [g.label for g in out]
    for g in out:
        if labels.count(g.label) > 1:  # same options, different models: tell them apart
            g.label += f" [{g.config_key}]"
    return sorted(out, key=lambda g: g.label)


def _add_bounds(
    group: ResultMatrices, results: list[StitchResult], spec: BootstrapSpec, fi: dict[str, int], ei: dict[str, int]
) -> None:
    """The intervals of the runs that kept their per-image statistics, as bound matrices of the group."""
    attach_intervals(results, spec)
    for metric in (m for m in INTERVAL_FIELDS if m in group.metrics):
        lower, upper = (np.full_like(group.metrics[metric], np.nan) for _ in range(2))
        for r in results:
            ci = getattr(r, INTERVAL_FIELDS[metric])
            if ci is not None:
                lower[fi[r.front_layer], ei[r.end_layer]], upper[fi[r.front_layer], ei[r.end_layer]] = ci
        group.bounds[metric] = (lower, upper)
    n = sorted({r.samples.n for r in results if r.samples is not None})
    group.interval = {
        **spec.record(),
        "n": n[0] if len(n) == 1 else n,
        "runs_without_per_sample": sum(r.samples is None for r in results),
    }


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text).strip("_")[:80]


def write_collected(groups: list[ResultMatrices], out_dir: str | os.PathLike) -> list[Path]:
    """``matrices.json`` (every group) and one CSV per metric (in ``out_dir`` for a single group, in a
    sub-folder per group otherwise). Returns the files written."""
    out = ensure_writable_dir(out_dir)
    written = []
    for g in groups:
        folder = out if len(groups) == 1 else out / f"{_slug(g.label)}__{g.config_key}"
        for metric in METRICS:
            path = folder / f"{metric}.csv"
            write_csv_atomic(path, g.csv_rows(metric), ["front\\end", *g.end_layers])
            written.append(path)
            for side, values in zip(("lower", "upper"), g.bounds.get(metric, ())):
                path = folder / f"{metric}.{side}.csv"
                write_csv_atomic(path, g.csv_rows(metric, values), ["front\\end", *g.end_layers])
                written.append(path)
    path = out / "matrices.json"
    write_json_atomic(path, {"groups": [g.to_dict() for g in groups]})
    written.append(path)
    return written
