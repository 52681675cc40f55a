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

from ..data.loading import sample_subset
from ..data.splits import as_dataset
from ..errors import StitchkitError
from ..models.layers import layered
from ..ood.detectors import Detector
from ..ood.evaluate import genuine_pass
from ..ood.matrices import MATRIX_METRICS, OODMatrices
from ..ood.metrics import OODConvention
from ..ood.per_sample import as_bootstrap, attach_intervals, score_arrays
from ..ood.settings import PassOptions
from ..ood.stitch_scoring import score_stitches
from ..results import Matrix, Provenance, Table
from ..results.display import Described, Description, inline, labels
from ..results.ood_scores import score_figure
from ..results.plot import heatmaps
from ..stitching.grouped import GridPair
from ..uncertainty.bootstrap import BootstrapSpec
from ..utils.device import resolve_device
from .arguments import check_types
from .inputs import network_text, resolve_data, split_options
from .ood_inputs import detector_sources, detectors_by_end_layer, id_splits
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

    def _records(self) -> dict[str, Any]:
        """What :meth:`to_dict` and :meth:`save` add to the matrices: detector ids, options, each stitch's run."""
        return {
            "detector_ids": self.detector_ids,
            "options": self.options,
            "runs": {f"{f}|{e}": r.to_dict() for (f, e), r in self.ood.results.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.ood.to_dict(), **self._records()}

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """The files ``stitchkit ood`` writes: ``accuracy.csv``, ``<metric>_<detector>.csv``, ``ood_matrices.json``."""
        return self.ood.save(out_dir, self._records())


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


def _split_test_options(
    stitches: Any, positional: Mapping[str, Any], options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (the test's own, checked against :class:`OODTestSettings`; the stitching's, which
    :func:`stitch_grid` checks). A ready grid takes no stitching options, and none of ``positional`` (the
    other positional arguments, by name)."""
    if isinstance(stitches, StitchGridResult):
        given = [name for name, value in positional.items() if value is not None]
        if given:
            raise StitchkitError(
                f"ood_test of a stitch grid takes no {given[0]}: the grid has its models, layers and data"
            )
        return split_options(options, OODTestSettings, "stitchkit.ood_test"), {}
    own = {name: value for name, value in options.items() if name in _OOD_OPTIONS}
    stitch_options = {name: value for name, value in options.items() if name not in _OOD_OPTIONS}
    return own, stitch_options


def _grid_to_test(
    stitches: Any, positional: Mapping[str, Any], test_samples: int | None, stitch_options: Mapping[str, Any]
) -> StitchGridResult:
    """The grid given, or the one :func:`stitch_grid` makes of the networks, layers (default all) and data
    in ``positional``, evaluated on the first ``test_samples`` test images."""
    if isinstance(stitches, StitchGridResult):
        return stitches
    front_layers, end_layers = positional["front_layers"], positional["end_layers"]
    fronts, ends = "all" if front_layers is None else front_layers, "all" if end_layers is None else end_layers
    return stitch_grid(
        stitches, positional["end"], fronts, ends, positional["data"], test_samples=test_samples, **stitch_options
    )


def _ood_matrices(grid_result: StitchGridResult, ordered: list[Any], scored: list[Any]) -> OODMatrices:
    """The front × end matrices of the scored stitches (``scored[i]`` is ``ordered[i]``'s), each result
    noting the stitched accuracy the grid recorded."""
    matrices = OODMatrices(grid_result.front_layers, grid_result.end_layers)
    for record, result in zip(ordered, scored, strict=True):
        result.extra = {"stitched_accuracy_in_result": record.accuracy}
        matrices.add(record.front_layer, record.end_layer, result)
    return matrices


def _stitches_in_order(
    grid_result: StitchGridResult, end_order: list[str], front_order: list[str]
) -> tuple[list[Any], list[GridPair]]:
    """The grid's records sorted by end layer, then front layer (the networks' layer order), and their
    stitched networks in eval mode."""
    ordered = sorted(grid_result.pairs, key=lambda r: (end_order.index(r.end_layer), front_order.index(r.front_layer)))
    pairs = [
        GridPair(r.front_layer, r.end_layer, grid_result.stitcher(r.front_layer, r.end_layer).eval()) for r in ordered
    ]
    return ordered, pairs


def _recorded_options(
    eval_name: str,
    id_name: str,
    o: OODTestSettings,
    largest_group: int,
    by_layer: Mapping[str, Mapping[str, Detector]],
) -> dict[str, Any]:
    """What :attr:`OODTestResult.options` records: the data, the test's settings, the group size used
    and each detector's settings."""
    return {
        "eval_dataset": eval_name,
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
    positional = {"end": end, "front_layers": front_layers, "end_layers": end_layers, "data": data}
    own, stitch_options = _split_test_options(stitches, positional, options)
    check_types(OODTestSettings, own, "stitchkit.ood_test")
    o = replace(settings or OODTestSettings(), **own)
    spec = as_bootstrap(o.bootstrap)
    grid_result = _grid_to_test(stitches, positional, o.test_samples, stitch_options)
    s = grid_result.settings
    device = resolve_device(s.device)
    scoring = PassOptions(device=device, batch_size=s.batch_size, workers=s.workers, progress=o.progress)
    sources = detector_sources(detectors)
    eval_splits = (
        grid_result.data
        if o.eval_data is None
        else resolve_data(o.eval_data, data_root=s.data_root, download=s.download)
    )
    id_test, id_train, id_name = id_splits(o.id_data, eval_splits, s.data_root)
    # the network itself (its content hash finds its detectors), not a folded copy
    end_model = grid_result.end.model.to(device).eval()
    end_order, front_order = layered(end_model).layers, layered(grid_result.front.model).layers
    end_layers_used = [layer for layer in end_order if layer in grid_result.end_layers]
    by_layer, ids = detectors_by_end_layer(
        sources,
        end_model,
        end_layers_used,
        id_train=id_train,
        end_path=grid_result.end.path,
        fit_samples=o.detector_fit_samples,
        seed=o.seed,
        detector_options=o.detector_options,
        scoring=scoring,
    )
    genuine = genuine_pass(end_model, by_layer, sample_subset(as_dataset(id_test), o.test_samples), scoring)
    ordered, pairs = _stitches_in_order(grid_result, end_order, front_order)
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
    matrices = _ood_matrices(grid_result, ordered, scored)
    # paired where the genuine side is the evaluation set's own test split (the same first test_samples images)
    attach_intervals(matrices, genuine.scores, genuine.norms, spec, paired=o.id_data is None, convention=o)
    options = _recorded_options(eval_splits.info.name, id_name, o, largest_group, by_layer)
    return OODTestResult(matrices, grid_result, ids, genuine.scores, options, genuine.norms)


__all__ = ["OODTestResult", "OODTestSettings", "ood_test"]
