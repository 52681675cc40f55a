"""Stitching from Python: :func:`direct_match`, :func:`task_loss_match` and :func:`stitch_grid`, thin
wrappers of :func:`stitchkit.stitching.grid.stitch_grid` (the same grid session, grouped by default, that
``stitchkit stitch`` runs) returning a :class:`StitchGridResult`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from ..data.splits import DataSplits
from ..errors import StitchkitError, unknown_name
from ..results import Matrix, Provenance, Table
from ..results.display import Described, Description, inline, labels, number
from ..results.plot import heatmaps
from ..stitch_methods import METHOD_INIT, METHOD_TITLES, METHODS, either_of
from ..stitching import grid
from ..stitching.collect import METRIC_KINDS
from ..stitching.donors import Donor
from ..stitching.intervals import INTERVAL_FIELDS, bootstrap_spec, pair_intervals
from ..stitching.records import StitchResult
from ..stitching.run_folder import load_stitcher
from ..stitching.settings import StitchSettings
from ..stitching.stitcher import Stitcher
from ..uncertainty.bootstrap import DEFAULT_RESAMPLES, BootstrapSpec
from .arguments import check_types
from .inputs import (
    InputOptions,
    loader_batch_size,
    network_text,
    resolve_data,
    resolve_model,
    same_source,
    split_options,
    with_model_classes,
)

#: the columns of :meth:`StitchGridResult.to_pandas`, one row per pair
PAIR_COLUMNS = (
    "front_layer",
    "end_layer",
    "stitching_type",
    "init",
    "epochs",
    "accuracy",
    "loss",
    "residual",
    "residual_batch_mean",
    "fit_residual",
    "dm_fit_residual",
    "dm_rank",
    "n_fit",
    "n_test",
    "front_accuracy",
    "end_accuracy",
    "run_name",
    "run_dir",
)
#: the matrices of a grid: the per-pair numbers, and the relative accuracy (accuracy / end accuracy)
GRID_METRICS = {**METRIC_KINDS, "relative_accuracy": ("ratio", (0.0, None))}
#: the options of :func:`stitch_grid` that say how its models and data are made (:class:`InputOptions`)
INPUT_OPTIONS = frozenset(f.name for f in fields(InputOptions))
#: what the functions set themselves
REFUSED = {"dataset": "give the data as data=", "init": "the method sets it (method=" + either_of(METHODS, "'") + ")"}


@dataclass(repr=False)
class StitchGridResult(Described):
    """A grid of stitches: one :class:`~stitchkit.stitching.records.StitchResult` per pair (``pairs``,
    front-major), front × end matrices of their numbers (:meth:`matrix`), and the stitched networks
    (:meth:`stitcher`), with the donors, the data and the settings they were made with."""

    method: str
    front_layers: list[str]
    end_layers: list[str]
    pairs: list[StitchResult]
    settings: StitchSettings
    data: DataSplits = field(repr=False)
    front: Donor = field(repr=False)
    end: Donor = field(repr=False)
    stitchers: dict[tuple[str, str], Stitcher] = field(default_factory=dict, repr=False)

    @property
    def title(self) -> str:
        return METHOD_TITLES[self.method]

    def pair(self, front_layer: str | None = None, end_layer: str | None = None) -> StitchResult:
        """The record of one pair (no arguments: the only pair of a 1 × 1 grid)."""
        if front_layer is None and end_layer is None:
            if len(self.pairs) != 1:
                raise StitchkitError(f"this grid has {len(self.pairs)} pairs; name one: pair(front_layer, end_layer)")
            return self.pairs[0]
        found = [r for r in self.pairs if r.front_layer == front_layer and r.end_layer == end_layer]
        if not found:
            raise StitchkitError(
                f"no pair {front_layer} -> {end_layer} in this grid; front layers {', '.join(self.front_layers)}, "
                f"end layers {', '.join(self.end_layers)}"
            )
        return found[0]

    def stitcher(self, front_layer: str | None = None, end_layer: str | None = None) -> Stitcher:
        """The stitched network of one pair (front prefix → stitching layer → end suffix), ready to run."""
        record = self.pair(front_layer, end_layer)
        key = (record.front_layer, record.end_layer)
        if key not in self.stitchers:  # a pair skipped as finished in save_dir: its network is on disk
            if not record.run_dir:
                raise StitchkitError(f"the stitched network of {key[0]} -> {key[1]} was not kept")
            self.stitchers[key] = load_stitcher(record.run_dir, front=self.front.model, end=self.end.model).eval()
        return self.stitchers[key]

    def provenance(self, what: str) -> Provenance:
        first = self.pairs[0]
        return Provenance(
            what,
            {"front": self.front.fingerprint, "end": self.end.fingerprint},
            {"method": self.method, "dataset": first.dataset, **first.options},
            dict(first.conventions),
        )

    def matrix(self, metric: str = "accuracy") -> Matrix:
        """Front × end matrix of one of :data:`GRID_METRICS` (NaN where a pair has no value); with the
        bootstrap on (``bootstrap=B``) the accuracy, residual and relative accuracy carry their intervals."""
        cis = [getattr(r, INTERVAL_FIELDS[metric]) for r in self.pairs] if metric in INTERVAL_FIELDS else [None]
        if any(ci is None for ci in cis):
            return self._matrix(metric)
        bounds = (np.array([ci[0] for ci in cis]), np.array([ci[1] for ci in cis]))
        return self._matrix(metric, bounds, self.pairs[0].interval)

    def ci(
        self,
        metric: str = "accuracy",
        *,
        resamples: int | None = None,
        level: float | None = None,
        seed: int | None = None,
    ) -> Matrix:
        """The matrix of ``metric`` (``"accuracy"``, ``"residual"`` or ``"relative_accuracy"``) with the bounds of
        its percentile bootstrap intervals, computed from the pairs' per-image statistics (no network
        runs again): ``resamples`` (default: the settings' ``bootstrap``, else 1000) of the test images,
        shared by every pair, at ``level`` (default the settings' ``bootstrap_level``), seeded with
        ``seed`` (default ``bootstrap_seed``, else the settings' ``seed``)."""
        if metric not in INTERVAL_FIELDS:
            raise unknown_name("metric with an interval", metric, INTERVAL_FIELDS)
        missing = [f"{r.front_layer} -> {r.end_layer}" for r in self.pairs if r.samples is None]
        if missing:
            raise StitchkitError(
                f"no per-image statistics for {', '.join(missing)} (runs from before they were kept); run them again "
                "with overwrite=True"
            )
        base = bootstrap_spec(self.settings)
        spec = BootstrapSpec(
            resamples=resamples if resamples is not None else (base.resamples or DEFAULT_RESAMPLES),
            level=level if level is not None else base.level,
            seed=seed if seed is not None else base.seed,
        )
        bounds = pair_intervals([r.samples for r in self.pairs], spec).get(metric)
        if bounds is None:
            raise StitchkitError(
                f"no {metric.replace('_', ' ')} intervals: the end network's per-image hits were not measured"
            )
        return self._matrix(metric, bounds, {**spec.record(), "n": self.pairs[0].samples.n})

    def _matrix(
        self, metric: str, bounds: tuple[np.ndarray, np.ndarray] | None = None, interval: dict | None = None
    ) -> Matrix:
        if metric not in GRID_METRICS:
            raise unknown_name("grid metric", metric, GRID_METRICS)
        kind, value_range = GRID_METRICS[metric]
        index = {(r.front_layer, r.end_layer): k for k, r in enumerate(self.pairs)}

        def grid_of(values) -> list[list[float | None]]:
            return [
                [values[index[(f, e)]] if (f, e) in index else None for e in self.end_layers] for f in self.front_layers
            ]

        values = grid_of([_pair_value(r, metric) for r in self.pairs])
        extra = (
            {}
            if bounds is None
            else {
                "lower": grid_of(bounds[0].tolist()),
                "upper": grid_of(bounds[1].tolist()),
                "interval": dict(interval or {}),
            }
        )
        name = f"{self.title} {metric.replace('_', ' ')}"
        return Matrix(
            self.front_layers,
            self.end_layers,
            values,
            kind=kind,
            range=value_range,
            name=name,
            provenance=self.provenance(name),
            **extra,
        )

    @property
    def matrices(self) -> dict[str, Matrix]:
        """The accuracy and the (pooled test) residual matrices."""
        return {metric: self.matrix(metric) for metric in ("accuracy", "residual")}

    def table(self) -> Table:
        """One row per pair (:data:`PAIR_COLUMNS`), each metric with an interval (``StitchSettings.bootstrap``)
        followed by its ``<metric> (lower)`` and ``<metric> (upper)`` columns."""
        bounded = [m for m, name in INTERVAL_FIELDS.items() if any(getattr(r, name) is not None for r in self.pairs)]
        columns = [c for column in PAIR_COLUMNS for c in [column] + _bound_columns(column, bounded)]
        columns += [c for m in bounded if m not in PAIR_COLUMNS for c in _bound_columns(m, bounded)]
        rows = []
        for r in self.pairs:
            row = {c: getattr(r, c) for c in PAIR_COLUMNS}
            for m in bounded:
                ci = getattr(r, INTERVAL_FIELDS[m])
                row[f"{m} (lower)"], row[f"{m} (upper)"] = (ci[0], ci[1]) if ci is not None else (None, None)
            rows.append(row)
        return Table(
            rows, columns, name=f"{self.title} pairs", provenance=self.provenance(f"{self.title} stitching, per pair")
        )

    def to_pandas(self):
        """A DataFrame with one row per pair (the wide matrices: ``matrix(metric).to_pandas()``)."""
        return self.table().to_pandas()

    def plot(self, metric: str | None = None, ax=None):
        """Heatmaps: of ``metric``, or of the accuracy and residual side by side (a figure a notebook shows
        by itself)."""
        if metric is not None:
            return self.matrix(metric).plot(ax=ax)
        return inline(heatmaps(list(self.matrices.values())))

    def description(self) -> Description:
        """What :meth:`summary`, ``repr`` and a notebook show: the networks, the layers, and the accuracy,
        the relative accuracy (where the end network's own accuracy was measured) and the residual."""
        first = self.pairs[0]
        facts = {
            "networks": f"front {network_text(self.front)} → end {network_text(self.end)}",
            "front layers": labels(self.front_layers),
            "end layers": labels(self.end_layers),
        }
        if first.end_accuracy is not None:
            facts["end network alone"] = f"accuracy {number(first.end_accuracy)}"
        names = ["accuracy", *(["relative_accuracy"] if first.end_accuracy else []), "residual"]
        notes = [
            f"{first.stitching_type} stitching layers, {first.n_fit} fit images, {first.epochs} epochs of training",
            "per pair: .pair(front, end) and .to_pandas(); the stitched network: .stitcher(front, end)",
        ]
        return Description(
            f"StitchGridResult: {self.title} stitching, {len(self.front_layers)} × {len(self.end_layers)} layer pairs, "
            f"{first.dataset} ({first.n_test} test images)",
            facts,
            {name.replace("_", " "): self.matrix(name) for name in names},
            notes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "front_layers": self.front_layers,
            "end_layers": self.end_layers,
            "matrices": {k: m.to_dict() for k, m in self.matrices.items()},
            "pairs": [r.to_dict() for r in self.pairs],
        }


def _bound_columns(metric: str, bounded: list[str]) -> list[str]:
    return [f"{metric} (lower)", f"{metric} (upper)"] if metric in bounded else []


def _pair_value(result: StitchResult, metric: str) -> float | None:
    return getattr(result, metric)  # relative_accuracy: StitchResult's property


def stitch_grid(
    front: Any,
    end: Any,
    front_layers: str | Sequence[str],
    end_layers: str | Sequence[str],
    data: Any,
    *,
    method: str = "dm",
    settings: StitchSettings | None = None,
    save_dir: str | os.PathLike | None = None,
    inputs: InputOptions | None = None,
    **options: Any,
) -> StitchGridResult:
    """Stitch every (front layer, end layer) pair; layers are names, ``"all"`` or comma-separated.

    ``method``: ``"dm"`` (direct matching: least squares on ``fit_samples`` training images, nothing
    trained), ``"tlm"`` (task loss matching from a random start, ``epochs`` on the training split with the
    end network's augmentation, ``augment``) or ``"tlm_from_dm"`` (task loss matching from the DM solution). ``options``
    are
    :class:`~stitchkit.stitching.settings.StitchSettings` fields (``fit_samples``, ``test_samples``,
    ``epochs``, ``stitching_type``, ``batch_size``, ``seed``, ``device``, …), applied to ``settings``
    (default: the library's defaults, quiet), or :class:`~stitchkit.api.inputs.InputOptions` fields
    (``model_options``, ``num_classes``), applied to ``inputs``. A registered model name is built untrained,
    seeded with ``seed`` (front) and ``seed + 1`` (end); ``model_options`` go to its builder or checkpoint loader.
    With ``save_dir`` (named data only) every pair gets the run folder ``stitchkit stitch`` writes, and
    finished pairs there are not run again.
    """
    check_types(stitch_grid, locals(), "stitchkit.stitch_grid")
    if method not in METHODS:
        raise unknown_name("stitching method", str(method), METHODS)
    options = split_options(options, (StitchSettings, InputOptions), "stitchkit.stitch_grid", refused=REFUSED)
    own = {name: options.pop(name) for name in INPUT_OPTIONS & set(options)}
    check_types(InputOptions, own, "stitchkit.stitch_grid")
    check_types(StitchSettings, options, "stitchkit.stitch_grid")
    given = replace(inputs or InputOptions(), **own)
    if method == "dm" and options.get("epochs", 0) != 0:
        raise StitchkitError(
            "direct matching (method='dm') trains nothing; leave out epochs, or use method='tlm_from_dm'"
        )
    if method != "dm" and "epochs" in options and not (isinstance(options["epochs"], int) and options["epochs"] >= 1):
        raise StitchkitError(
            f"task loss matching trains the stitching layer: epochs must be at least 1, got {options['epochs']!r}; "
            "for a stitch without training use direct_match"
        )
    quiet = {} if settings is not None else {"verbose": False, "progress": False}
    batch = loader_batch_size(data)
    if batch is not None and settings is None:
        options.setdefault("batch_size", batch)
    s = replace(settings or StitchSettings(), **{**quiet, **options}, init=METHOD_INIT[method])
    if method == "dm":
        s.epochs = 0
    splits = resolve_data(data, data_root=s.data_root, download=s.download, num_classes=given.num_classes)
    if splits.named:
        s.dataset = splits.info.name
    s.validate()
    front_d = resolve_model(front, splits, seed=s.seed, model_options=given.model_options, role="front")
    end_d = (
        front_d
        if same_source(front, end)
        else resolve_model(end, splits, seed=s.seed + 1, model_options=given.model_options, role="end")
    )
    splits = with_model_classes(splits, front_d, end_d)
    stitchers: dict[tuple[str, str], Stitcher] = {}
    keep = grid.GridOptions(
        command="python: stitchkit.stitch_grid",
        on_stitched=lambda r, st: stitchers.__setitem__((r.front_layer, r.end_layer), st),
    )
    pairs = grid.stitch_grid(front_d, end_d, front_layers, end_layers, s, keep, save_dir=save_dir, data=splits)
    fls = list(dict.fromkeys(r.front_layer for r in pairs))
    els = list(dict.fromkeys(r.end_layer for r in pairs))
    return StitchGridResult(method, fls, els, pairs, s, splits, front_d, end_d, stitchers)


def direct_match(
    front: Any, end: Any, front_layer: str | Sequence[str], end_layer: str | Sequence[str], data: Any, **options: Any
) -> StitchGridResult:
    """Direct matching (least squares on the front layer's activations) of one pair, or of a grid when
    the layers are lists or ``"all"``; keywords as :func:`stitch_grid`. ``result.pair()`` is the record
    of a single pair, ``result.stitcher()`` its stitched network."""
    return stitch_grid(front, end, front_layer, end_layer, data, method="dm", **options)


def task_loss_match(
    front: Any,
    end: Any,
    front_layer: str | Sequence[str],
    end_layer: str | Sequence[str],
    data: Any,
    *,
    from_dm: bool = False,
    **options: Any,
) -> StitchGridResult:
    """Task loss matching (training the stitching layer on the end network's task, ``epochs`` epochs,
    default 30) of one pair or a grid, from a random start or, with ``from_dm``, from the direct-matching
    solution; keywords as :func:`stitch_grid`."""
    return stitch_grid(front, end, front_layer, end_layer, data, method="tlm_from_dm" if from_dm else "tlm", **options)


__all__ = ["METHOD_INIT", "StitchGridResult", "direct_match", "stitch_grid", "task_loss_match"]
