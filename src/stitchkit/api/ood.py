"""The OOD test of stitches from Python: :func:`ood_test` — are the stitched representations
in-distribution for the end network? — over the same pieces as ``stitchkit ood`` (the end layers'
detectors and the grouped scoring of :mod:`stitchkit.ood.stitch_scoring`), on a grid just stitched in
memory instead of a folder of runs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data import get_dataset
from ..data.loading import sample_subset
from ..data.splits import DataSplits, as_dataset
from ..errors import StitchkitError
from ..models.layers import layered
from ..ood.detectors import Detector, training_free_detectors
from ..ood.evaluate import genuine_pass
from ..ood.matrices import MATRIX_METRICS, OODMatrices
from ..ood.metrics import OODConvention
from ..ood.per_sample import as_bootstrap, attach_intervals, score_arrays
from ..ood.registry import DetectorRegistry
from ..ood.settings import PassOptions
from ..ood.stitch_scoring import end_layer_detectors, score_stitches
from ..results import Matrix, Provenance, Table
from ..results.display import Described, Description, inline, labels
from ..results.ood_scores import score_figure
from ..results.plot import heatmaps
from ..stitching.grouped import GridPair
from ..uncertainty.bootstrap import BootstrapSpec
from ..utils.device import resolve_device
from .arguments import check_types
from .inputs import network_text, resolve_data, split_options
from .stitch import StitchGridResult, stitch_grid


@dataclass(repr=False)
class OODTestResult(Described):
    """Per stitch: its accuracy on the evaluation set and, per detector, AUROC / AUPR / FPR95 of its
    stitched activations against the end network's genuine ones (``ood.results[(front, end)]``, a
    :class:`~stitchkit.ood.evaluate.StitchOODResult` with the scores), as front × end matrices; beside
    them what explains an AUROC: the norm ratio of the stitched to the genuine activations and both
    sides' score distributions (:meth:`score_table`, :meth:`plot_scores`)."""

    ood: OODMatrices
    stitches: StitchGridResult = field(repr=False)
    detector_ids: dict[str, str | None] = field(default_factory=dict)
    id_scores: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    id_norms: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def detectors(self) -> list[str]:
        return self.ood.detectors

    def _provenance(self, what: str) -> Provenance:
        conventions = self.ood.to_dict()["conventions"]
        models = {"front": self.stitches.front.fingerprint, "end": self.stitches.end.fingerprint}
        return Provenance(
            what,
            models,
            {"stitching": self.stitches.method, **self.options, "detector_ids": self.detector_ids},
            {f"metrics ({name})": text for name, text in conventions.items()},
        )

    def matrix(self, metric: str = "auroc", detector: str | None = None) -> Matrix:
        """Front × end matrix of ``accuracy``, ``norm_ratio`` or of a detector's ``auroc``, ``aupr``, ``fpr95`` or
        ``median_score`` (default: the first detector); with ``lower`` / ``upper`` bounds for the norm
        ratio, AUROC, AUPR and FPR95 when the test was run with ``bootstrap``."""
        matrix = self.ood.to_matrix(metric, detector)
        matrix.provenance = self._provenance(
            f"OOD test of {self.stitches.title} stitches: {matrix.name}"
        )  # the models and options too
        return matrix

    def ci(self, metric: str = "auroc", detector: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The front × end ``(lower, upper)`` confidence intervals of ``metric`` (``auroc``, ``aupr``, ``fpr95`` of
        ``detector``, default the first, or ``norm_ratio``); the test must have been run with ``bootstrap``."""
        return self.matrix(metric, detector).ci()

    def score_arrays(self) -> dict[str, np.ndarray]:
        """Every test image's outlier scores and activation norms, genuine and stitched
        (:func:`stitchkit.ood.per_sample.score_arrays`): what the metrics and their intervals are made from."""
        return score_arrays(self.ood.results, self.id_scores, self.id_norms)

    @property
    def matrices(self) -> dict[str, Matrix]:
        """The stitched accuracy, each detector's AUROC and the norm ratio."""
        return {
            "accuracy": self.matrix("accuracy"),
            **{f"auroc ({d})": self.matrix("auroc", d) for d in self.detectors},
            "norm ratio": self.matrix("norm_ratio"),
        }

    def table(self) -> Table:
        """One row per stitch and detector."""
        rows = []
        for (front, end), r in self.ood.results.items():
            for name, m in r.metrics.items():
                rows.append(
                    {
                        "front_layer": front,
                        "end_layer": end,
                        "detector": name,
                        "accuracy": r.accuracy,
                        "n": r.n,
                        **{k: getattr(m, k) for k in MATRIX_METRICS},
                        "mean_id_score": m.mean_id_score,
                        "mean_ood_score": m.mean_ood_score,
                        "median_id_score": m.id_score_summary.q50,
                        "median_ood_score": m.ood_score_summary.q50,
                        "norm_ratio": r.norm_ratio,
                    }
                )
        return Table(rows, name="OOD test", provenance=self._provenance(f"OOD test of {self.stitches.title} stitches"))

    def score_table(self) -> Table:
        """Each detector's score distribution per end layer: the genuine activations' row and one row per
        stitch (:meth:`~stitchkit.ood.matrices.OODMatrices.score_rows`)."""
        return Table(
            self.ood.score_rows(),
            name="OOD score distributions",
            provenance=self._provenance(f"OOD test of {self.stitches.title} stitches: score distributions"),
        )

    def plot_scores(self, detector: str | None = None):
        """Box plots of ``detector``'s scores (default: the first), genuine vs each stitch, one panel per end
        layer (:func:`~stitchkit.results.ood_scores.score_figure`)."""
        detector = detector or self.detectors[0]
        return inline(
            score_figure(
                self.ood.score_rows(), detector, title=f"OOD test of {self.stitches.title} stitches: {detector} scores"
            )
        )

    def to_pandas(self):
        return self.table().to_pandas()

    def plot(self, metric: str | None = None, detector: str | None = None, ax=None):
        """The heatmap of one metric, or the accuracy, every detector's AUROC and the norm ratio side by side
        (a figure a notebook shows by itself)."""
        if metric is not None:
            return self.matrix(metric, detector).plot(ax=ax)
        return inline(heatmaps(list(self.matrices.values())))

    def description(self) -> Description:
        """What :meth:`summary`, ``repr`` and a notebook show: the networks, the layers, the detectors, and
        the stitched accuracy, each detector's AUROC and the norm ratio."""
        grid, o = self.stitches, self.options
        n = next(iter(self.ood.results.values())).n if self.ood.results else 0
        facts = {
            "networks": f"front {network_text(grid.front)} → end {network_text(grid.end)}",
            "front layers": labels(self.ood.front_layers),
            "end layers": labels(self.ood.end_layers),
            "detectors": ", ".join(self.detectors),
        }
        notes = [
            f"genuine activations: {o.get('id_dataset')}; positive class {o.get('positive')!r}, FPR at TPR "
            f"{o.get('tpr')}",
            "per stitch and detector: .to_pandas(); score distributions: .score_table(), .plot_scores()",
        ]
        return Description(
            f"OODTestResult: {len(self.detectors)} detector{'s' if len(self.detectors) != 1 else ''} on "
            f"{len(self.ood.front_layers)} × {len(self.ood.end_layers)} {grid.title} stitches, {o.get('eval_dataset')} "
            f"({n} test images)",
            facts,
            self.matrices,
            notes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.ood.to_dict(),
            "detector_ids": self.detector_ids,
            "options": self.options,
            "runs": {f"{f}|{e}": r.to_dict() for (f, e), r in self.ood.results.items()},
        }

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """The files ``stitchkit ood`` writes: ``accuracy.csv``, ``<metric>_<detector>.csv``, ``ood_matrices.json``."""
        return self.ood.save(
            out_dir,
            {
                "detector_ids": self.detector_ids,
                "options": self.options,
                "runs": {f"{f}|{e}": r.to_dict() for (f, e), r in self.ood.results.items()},
            },
        )


def _detector_sources(
    detectors: Any,
) -> tuple[DetectorRegistry | None, list[str], Mapping[str, Mapping[str, Detector]] | None]:
    """``detectors`` as (an energy detectors' registry, training-free names, ready detectors by layer)."""
    if isinstance(detectors, Mapping):
        return None, [], detectors
    items = [detectors] if isinstance(detectors, (str, os.PathLike)) else list(detectors)
    registry, names, training_free = None, [], training_free_detectors()
    for item in items:
        if isinstance(item, str) and item in training_free:
            names.append(item)
        elif isinstance(item, (str, os.PathLike)) and Path(item).is_dir() and registry is None:
            registry = DetectorRegistry(item)
        else:
            raise StitchkitError(
                f"detector {item!r} is neither a training-free detector ({', '.join(training_free)}) nor a folder "
                "of energy detectors (`stitchkit detector train … -fdir FOLDER`; one folder at most)"
            )
    if registry is None and not names:
        raise StitchkitError(
            "no detectors: give training-free ones (e.g. detectors=['mahalanobis']) or a folder of energy detectors"
        )
    return registry, names, None


def _ready_detectors(
    ready: Mapping[str, Mapping[str, Detector]], end_layers: list[str]
) -> dict[str, dict[str, Detector]]:
    """Detectors given ready, ``{end layer: {name: detector}}``: one set for every end layer of the grid."""
    missing = [layer for layer in end_layers if not ready.get(layer)]
    if missing:
        raise StitchkitError(
            f"no detectors given for end layer {missing[0]}; give {{end layer: {{name: detector}}}} for "
            f"{', '.join(end_layers)}"
        )
    return {layer: dict(ready[layer]) for layer in end_layers}


def _id_splits(id_data: Any, eval_splits: DataSplits, data_root: str | None) -> tuple[Any, Any, str]:
    """The ID (test set, training set for fitting detectors, name); a named ID set is converted to the
    evaluation set's item shape, as ``stitchkit ood -idd`` does."""
    if id_data is None:
        return eval_splits.test, eval_splits.train, eval_splits.info.name
    if isinstance(id_data, (str, os.PathLike)):
        test = get_dataset(str(id_data), "test", root=data_root, shape=eval_splits.info.shape)
        return test, get_dataset(str(id_data), "train", root=data_root, augment=False), str(id_data)
    splits = resolve_data(id_data)
    return splits.test, splits.train, splits.info.name


@dataclass(frozen=True, kw_only=True)
class OODTestSettings(OODConvention):
    """The options of :func:`ood_test`, each declared once, with the metric convention it inherits
    (:class:`~stitchkit.ood.metrics.OODConvention`: ``positive``, ``tpr``, ``fpr_rule``)."""

    detector_options: Mapping[str, Mapping[str, Any]] | None = None  # e.g. {"knn": {"k": 10}}
    eval_data: Any = None  # the evaluation set (None: the grid's data)
    id_data: Any = None  # the ID set of the genuine activations (None: the evaluation set)
    detector_fit_samples: int = 10_000  # random ID training images the training-free detectors are fitted on
    test_samples: int | None = None  # the first N test images (None: all)
    seed: int = 0  # the draw of the fitting images
    group_size: int | None = None  # stitches per end-suffix pass (None: automatic)
    progress: bool = False
    bootstrap: int | BootstrapSpec = 0  # resamples of the test images for intervals (0: none)


_OOD_OPTIONS = frozenset(f.name for f in fields(OODTestSettings))


def ood_test(
    stitches: Any,
    end: Any = None,
    front_layers: str | Sequence[str] | None = None,
    end_layers: str | Sequence[str] | None = None,
    data: Any = None,
    *,
    detectors: Any = ("mahalanobis",),
    settings: OODTestSettings | None = None,
    **options: Any,
) -> OODTestResult:
    """The OOD test of a grid of stitches: ``ood_test(grid)`` for a :class:`StitchGridResult`, or
    ``ood_test(front, end, front_layers, end_layers, data, method=…, …)`` to stitch first
    (:func:`stitch_grid`, with the ``options`` that are not the test's own).

    ``options`` are :class:`OODTestSettings` fields, applied to ``settings`` (default: its defaults).
    ``detectors``: training-free names (``"mahalanobis"``, ``"knn"``; fitted on ``detector_fit_samples`` random
    images of the ID training split, without augmentation, seeded with ``seed``), a folder of energy
    detectors trained for the end network (found by its content hash), or ``{end layer: {name:
    Detector}}``; ``detector_options`` e.g. ``{"knn": {"k": 10}}``. The stitched activations are those of
    the first ``test_samples`` items of the evaluation set's test split (``eval_data``, default the
    grid's data), the genuine ones those of the ID test set (``id_data``, default the same); when the
    stitches are made here, ``test_samples`` is also their evaluation's (and ``fit_samples``, among the
    stitching options, their direct matching's K).
    ``positive``, ``tpr`` and ``fpr_rule`` are the metric convention (:func:`stitchkit.ood.ood_metrics`).
    ``bootstrap``: resamples of the test images (or a :class:`~stitchkit.uncertainty.bootstrap.BootstrapSpec`
    with the level and seed; 0: none) for percentile intervals of AUROC, AUPR, FPR95 and the norm ratio
    (:meth:`OODTestResult.ci`), from the per-image scores, with no further pass of any network.
    """
    check_types(ood_test, locals(), "stitchkit.ood_test")
    if isinstance(stitches, StitchGridResult):
        given = [
            n
            for n, v in (("end", end), ("front_layers", front_layers), ("end_layers", end_layers), ("data", data))
            if v is not None
        ]
        if given:
            raise StitchkitError(
                f"ood_test of a stitch grid takes no {given[0]}: the grid has its models, layers and data"
            )
        own, stitch_options = split_options(options, OODTestSettings, "stitchkit.ood_test"), {}
    else:  # the test's own options, and the stitching's (checked by stitch_grid)
        own = {name: value for name, value in options.items() if name in _OOD_OPTIONS}
        stitch_options = {name: value for name, value in options.items() if name not in _OOD_OPTIONS}
    check_types(OODTestSettings, own, "stitchkit.ood_test")
    o = replace(settings or OODTestSettings(), **own)
    spec = as_bootstrap(o.bootstrap)
    if isinstance(stitches, StitchGridResult):
        grid_result = stitches
    else:
        fronts, ends = "all" if front_layers is None else front_layers, "all" if end_layers is None else end_layers
        grid_result = stitch_grid(stitches, end, fronts, ends, data, test_samples=o.test_samples, **stitch_options)
    s = grid_result.settings
    device = resolve_device(s.device)
    scoring = PassOptions(device=device, batch_size=s.batch_size, workers=s.workers, progress=o.progress)
    registry, training_free, ready = _detector_sources(detectors)
    eval_splits = (
        grid_result.data
        if o.eval_data is None
        else resolve_data(o.eval_data, data_root=s.data_root, download=s.download)
    )
    id_test, id_train, id_name = _id_splits(o.id_data, eval_splits, s.data_root)
    end_model = grid_result.end.model.to(
        device
    ).eval()  # the network itself (its content hash finds its detectors), not a folded copy
    end_order, front_order = layered(end_model).layers, layered(grid_result.front.model).layers
    end_layers_used = [layer for layer in end_order if layer in grid_result.end_layers]
    if ready is not None:
        by_layer, ids = _ready_detectors(ready, end_layers_used), {}
    else:
        fit_set = sample_subset(as_dataset(id_train), o.detector_fit_samples, seed=o.seed) if training_free else None
        by_layer, ids = end_layer_detectors(
            end_model,
            end_layers_used,
            registry=registry,
            source_path=grid_result.end.path,
            training_free=training_free,
            training_free_options=o.detector_options,
            fit_set=fit_set,
            scoring=scoring,
        )
    genuine = genuine_pass(end_model, by_layer, sample_subset(as_dataset(id_test), o.test_samples), scoring)
    ordered = sorted(grid_result.pairs, key=lambda r: (end_order.index(r.end_layer), front_order.index(r.front_layer)))
    pairs = [
        GridPair(r.front_layer, r.end_layer, grid_result.stitcher(r.front_layer, r.end_layer).eval()) for r in ordered
    ]
    eval_test = sample_subset(eval_splits.test, o.test_samples)
    scored, largest_group = score_stitches(
        pairs,
        by_layer,
        genuine.scores,
        eval_test,
        id_norms=genuine.norms,
        convention=o,
        scoring=scoring,
        group_size=o.group_size,
    )
    matrices = OODMatrices(grid_result.front_layers, grid_result.end_layers)
    for record, result in zip(ordered, scored, strict=True):
        result.extra = {"stitched_accuracy_in_result": record.accuracy}
        matrices.add(record.front_layer, record.end_layer, result)
    # paired where the genuine side is the evaluation set's own test split (the same first test_samples images)
    attach_intervals(matrices, genuine.scores, genuine.norms, spec, paired=o.id_data is None, convention=o)
    options = {
        "eval_dataset": eval_splits.info.name,
        "id_dataset": id_name,
        "test_samples": o.test_samples,
        "detector_fit_samples": o.detector_fit_samples,
        "seed": o.seed,
        "positive": o.positive,
        "tpr": o.tpr,
        "fpr_rule": o.fpr_rule,
        "group_size": largest_group,
        "detector_settings": {
            layer: {name: det.describe() for name, det in per.items()} for layer, per in by_layer.items()
        },
    }
    return OODTestResult(matrices, grid_result, ids, genuine.scores, options, genuine.norms)


__all__ = ["OODTestResult", "OODTestSettings", "ood_test"]
