"""The OOD test of a folder of stitching runs (``stitchkit ood RESULTS_DIR``), on top of
:mod:`stitchkit.stitching`'s run folders (``result.json``, ``config.json``, ``final_model.pt``).

Runs are grouped into experiments by their ``config_key`` (both models by content, the dataset and every
option except the layer pair), so TLM and DM runs in one folder give separate matrices. For each
experiment and each end layer:

1. the end layer's detectors: the energy detector from the registry (looked up by the end model's
   content hash) and optionally training-free ones fitted on the end model's genuine activations of
   the ID train split;
2. ID scores: the end model's genuine activations at the end layer for the ID test set, computed once
   per end layer for all its stitches (one pass of the end model's prefix over all end layers), with
   each sample's activation norm (the norm ratio's denominator);
3. optionally the sanity check (``sanity_dataset``) through the same detectors;
4. all runs together in ONE grouped pass over the evaluation test set (:func:`.stitch_scoring.score_stitches`,
   shared with the Python API's ``stitchkit.ood_test``; :mod:`.grouped`): per batch
   the front network runs once for all front layers, and per end layer the stitching layers, the end
   suffix (accuracy) and the detectors (scores) once for all its stitches; per stitch this equals
   :func:`stitchkit.ood.evaluate.evaluate_stitched`.

Outputs in ``out_dir`` (default ``<results_dir>/ood``), per experiment ``<out_dir>/<label>/``:
``accuracy.csv``, ``{auroc,aupr,fpr95}_<detector>.csv``, ``norm_ratio.csv``, ``median_score_<detector>.csv``,
``ood_matrices.json`` (matrices, the genuine side per end layer, conventions, per-run records with
score and norm distributions, sanity checks, wall times; :meth:`.matrices.OODMatrices.to_dict`) and
``energies/``: ``id/<end_layer>/<detector>.npy``,
``runs/<run name>/<detector>.npy`` (keyed by run, unlike the original's shared folder) and
``sanity/<end_layer>/<dataset>_<detector>.npy``.

With ``bootstrap`` (``stitchkit ood --bootstrap B``), AUROC, AUPR, FPR95 and the norm ratio get
percentile intervals from resampling the test images' scores and norms (:mod:`.per_sample`; paired
where the ID set is the evaluation set), in the matrices, their JSON and the printout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import dataset_info, get_dataset
from ..data.loading import sample_subset
from ..errors import StitchkitError
from ..models.folding import fold_batchnorm
from ..models.layers import layered
from ..models.loading import check_model_type, load_model, requested_model_type
from ..stitching.grouped import GridPair
from ..stitching.records import StitchResult
from ..stitching.run_folder import is_finished, load_stitcher
from ..uncertainty.bootstrap import BootstrapSpec
from ..utils.device import resolve_device
from ..utils.io import check_writable_dir
from .evaluate import StitchOODResult, genuine_pass, genuine_scores
from .matrices import OODMatrices
from .metrics import OODConvention
from .per_sample import as_bootstrap, attach_intervals, score_arrays
from .registry import DetectorRegistry
from .settings import DetectorFit, PassOptions
from .stitch_scoring import end_layer_detectors, score_stitches


@dataclass
class ExperimentOOD:
    """The OOD test of one experiment (runs sharing a config_key)."""

    label: str
    matrices: OODMatrices
    runs: dict[str, StitchOODResult]
    sanity: dict[str, dict[str, Any]] = field(default_factory=dict)
    detector_ids: dict[str, str | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    out_dir: str | None = None
    #: the genuine side's per-image scores and norms (:class:`~.evaluate.GenuineActivations`)
    genuine: Any = field(default=None, repr=False)
    #: whether genuine and stitched activations come from the same test images (:mod:`.per_sample`)
    paired: bool = True

    def score_arrays(self) -> dict[str, np.ndarray]:
        """Every image's scores and norms, genuine and stitched (:func:`.per_sample.score_arrays`)."""
        return score_arrays(self.matrices.results, self.genuine.scores, self.genuine.norms)


def _save_npy(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, np.asarray(values, dtype=np.float32))
    tmp.replace(path)


class _PendingScores:
    """Score arrays kept until an experiment is complete, then written: a failure half-way leaves no
    folder with part of an experiment's scores (they are small: one float per test image)."""

    def __init__(self) -> None:
        self.files: list[tuple[Path, np.ndarray]] = []

    def add(self, path: Path, values) -> None:
        self.files.append((path, np.asarray(values, dtype=np.float32)))

    def write(self) -> None:
        for path, values in self.files:
            _save_npy(path, values)
        self.files = []


def _check_inputs_first(out_root: Path, names: Sequence[str | None]) -> None:
    """Everything that can be checked before the work: the output folder and the dataset names."""
    check_writable_dir(out_root, "OOD output folder (-o)")
    for name in names:
        if name:
            dataset_info(name)


def _group_runs(results_dir: Path) -> dict[str, list[Any]]:
    if not results_dir.is_dir():
        raise StitchkitError(f"results folder {str(results_dir)!r} does not exist")
    groups: dict[str, list[Any]] = {}
    for run_dir in sorted(p for p in results_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not is_finished(run_dir):
            continue
        result = StitchResult.load(run_dir)
        groups.setdefault(result.config_key, []).append(result)
    if not groups:
        raise StitchkitError(
            f"{str(results_dir)!r} holds no finished stitching runs (sub-folders with result.json); "
            "run `stitchkit stitch ... -dir` first"
        )
    return groups


def _label(result: Any) -> str:
    return f"{result.stitching_type}__{result.init}_e{result.epochs}__{result.config_key}"


@dataclass(frozen=True, kw_only=True)
class ResultsOODSettings(OODConvention, DetectorFit, PassOptions):
    """The options of :func:`evaluate_results_dir` (``stitchkit ood``, a study's ``ood`` unit): the sets and
    where they are, the samples, the grouping and the bootstrap, and the records it carries: the metric
    convention (:class:`~.metrics.OODConvention`), the training-free detectors (:class:`~.settings.DetectorFit`)
    and the passes (:class:`~.settings.PassOptions`, here on the ``"auto"`` device)."""

    device: Any = "auto"  # auto, cpu, cuda, cuda:N, or a torch.device
    dataset: str | None = None  # the evaluation set whose test split is stitched (None: the runs' dataset)
    data_root: str | None = None
    id_dataset: str | None = None  # the ID test set of the genuine activations (None: dataset)
    id_data_root: str | None = None  # None: data_root
    sanity_dataset: str | None = None  # the detectors' sanity check (None: none)
    sanity_root: str | None = None  # None: data_root
    test_samples: int | None = None  # the first N test images of each set (None: all)
    group_size: int | None = None  # stitches per end-suffix pass (None: automatic, as in the grids)
    #: resamples of the test images for percentile intervals (or a BootstrapSpec; 0: none); a BootstrapSpec once built
    bootstrap: BootstrapSpec | int = 0

    def check(self) -> None:
        object.__setattr__(self, "bootstrap", as_bootstrap(self.bootstrap))  # frozen: set once, checked


def _load_run_model(desc: Mapping[str, Any], dataset: str, dev: torch.device) -> nn.Module:
    """A stitching run's front or end network, as the run recorded it."""
    path = _model_path(desc)
    check_model_type(path, desc.get("model_type"))
    model, _ = load_model(path, requested_model_type(desc.get("model_type")), dataset=dataset)
    return model.to(dev).eval()


def _run_detectors(
    s: ResultsOODSettings,
    registry: DetectorRegistry | None,
    end: nn.Module,
    end_layers: list[str],
    first: Any,
    id_name: str,
) -> tuple[dict[str, dict[str, Any]], dict[str, str | None]]:
    """The detectors of every end layer (energy from the registry, training-free ones fitted on the ID
    training split: :func:`.stitch_scoring.end_layer_detectors`) and the energy detectors' ids."""
    fit_set = None
    if s.training_free:
        train = get_dataset(id_name, "train", root=s.id_data_root or s.data_root, augment=False)
        fit_set = sample_subset(
            train, s.fit_samples, seed=s.seed, clamp=f"--fit-samples: the training split of {id_name}"
        )
    return end_layer_detectors(
        end,
        end_layers,
        registry=registry,
        source_path=first.end.get("path"),
        training_free=s.training_free,
        training_free_options=s.training_free_options,
        fit_set=fit_set,
        scoring=s,
    )


def _sanity_check(
    s: ResultsOODSettings,
    log: Callable[[str], None],
    end: nn.Module,
    detectors: dict[str, dict[str, Any]],
    id_scores: dict[str, dict[str, np.ndarray]],
    shape: tuple[int, ...],
    exp_dir: Path,
    pending: _PendingScores,
) -> dict[str, dict[str, Any]]:
    """The detectors on genuine ID test activations against the sanity dataset's, per end layer."""
    name = s.sanity_dataset
    sc_set = sample_subset(
        get_dataset(name, "test", root=s.sanity_root or s.data_root, shape=shape),
        s.test_samples,
        clamp=f"--test-samples: the test split of {name}",
    )
    sc_scores = genuine_scores(end, detectors, sc_set, s, desc=name)
    sanity: dict[str, dict[str, Any]] = {}
    for layer, per in detectors.items():
        sanity[layer] = {}
        log(f"Sanity checking {layer}'s OOD detectors against {name}:")
        for det in per:
            m = s.metrics(id_scores[layer][det], sc_scores[layer][det], det)
            sanity[layer][det] = m.to_dict()
            pending.add(exp_dir / "energies" / "sanity" / layer / f"{name}_{det}.npy", sc_scores[layer][det])
            log(f"  {det}: AUROC: {m.auroc:.4f}  AUPR: {m.aupr:.4f}  FPR95: {m.fpr95:.4f}")
    return sanity


def _stitch_pass(
    s: ResultsOODSettings,
    ordered: list[Any],
    front: nn.Module,
    end: nn.Module,
    detectors: dict[str, dict[str, Any]],
    genuine: Any,
    eval_name: str,
) -> tuple[list[StitchOODResult], int]:
    """All stitches of an experiment in one grouped pass (:func:`.stitch_scoring.score_stitches`): per test
    batch the front network runs once for all front layers, and per end layer the suffix and the
    detectors once for all its stitches; each stitch's result (against the ``genuine`` scores and norms
    of its end layer) in the order of ``ordered``, and the largest group."""
    eval_set = sample_subset(
        get_dataset(eval_name, "test", root=s.data_root),
        s.test_samples,
        clamp=f"--test-samples: the test split of {eval_name}",
    )
    dev = s.device
    # frozen copies with folded BatchNorms in channels-last layout: faster, the same function (tested)
    front_run = fold_batchnorm(front).to(dev, memory_format=torch.channels_last)
    end_run = front_run if end is front else fold_batchnorm(end).to(dev, memory_format=torch.channels_last)
    pairs = [
        GridPair(
            r.front_layer, r.end_layer, load_stitcher(Path(r.run_dir), device=dev, front=front_run, end=end_run).eval()
        )
        for r in ordered
    ]
    return score_stitches(
        pairs,
        detectors,
        genuine.scores,
        eval_set,
        id_norms=genuine.norms,
        convention=s,
        scoring=s,
        group_size=s.group_size,
    )


def _stitch_results(
    log: Callable[[str], None],
    ordered: list[Any],
    scored: list[StitchOODResult],
    matrices: OODMatrices,
    exp_dir: Path,
    pending: _PendingScores,
) -> dict[str, StitchOODResult]:
    """Each stitch's result (accuracy and metrics against the genuine ID scores of its end layer) by
    run name, in the matrices, its scores pending, and logged."""
    run_results: dict[str, StitchOODResult] = {}
    for result, res in zip(ordered, scored):
        run_dir = Path(result.run_dir)
        res.extra = {"run": run_dir.name, "stitched_accuracy_in_result_json": result.accuracy}
        run_results[run_dir.name] = res
        matrices.add(result.front_layer, result.end_layer, res)
        for name, values in res.ood_scores.items():
            pending.add(exp_dir / "energies" / "runs" / run_dir.name / f"{name}.npy", values)
        parts = "  ".join(
            f"{name}: AUROC {m.auroc:.4f} AUPR {m.aupr:.4f} FPR95 {m.fpr95:.4f}" for name, m in res.metrics.items()
        )
        log(
            f"{result.front_layer} -> {result.end_layer}  Accuracy: {res.accuracy:.4f}  "
            f"norm ratio {res.norm_ratio:.3f}  {parts}"
        )
    return run_results


def _evaluate_experiment(
    s: ResultsOODSettings,
    log: Callable[[str], None],
    key: str,
    runs: list[Any],
    registry: DetectorRegistry | None,
    exp_dir: Path,
    results_dir: Path,
) -> ExperimentOOD:
    """The OOD test of one experiment (the runs sharing a config key), written into ``exp_dir`` once complete."""
    first = runs[0]
    label = _label(first)
    info = dataset_info(s.dataset or first.dataset)
    id_info = dataset_info(s.id_dataset or info.name)
    dev = s.device
    seconds: dict[str, float] = {}
    pending = _PendingScores()
    started = time.perf_counter()
    front = _load_run_model(first.front, first.dataset, dev)
    end = (
        front
        if first.front.get("fingerprint") == first.end.get("fingerprint")
        else _load_run_model(first.end, first.dataset, dev)
    )
    seconds["load_models"] = time.perf_counter() - started
    end_order, front_order = layered(end).layers, layered(front).layers
    end_layers = [layer for layer in end_order if any(r.end_layer == layer for r in runs)]
    front_layers = [layer for layer in front_order if any(r.front_layer == layer for r in runs)]
    log(f"experiment {label}: {len(runs)} runs, front layers {front_layers}, end layers {end_layers}")

    started = time.perf_counter()
    detectors, ids = _run_detectors(s, registry, end, end_layers, first, id_info.name)
    seconds["detectors"] = time.perf_counter() - started

    # ID scores and activation norms, one pass over the ID test set for all end layers
    started = time.perf_counter()
    id_test = get_dataset(id_info.name, "test", root=s.id_data_root or s.data_root, shape=info.shape)
    id_set = sample_subset(id_test, s.test_samples, clamp=f"--test-samples: the test split of {id_info.name}")
    genuine = genuine_pass(end, detectors, id_set, s)
    id_scores = genuine.scores
    seconds["id_scores"] = time.perf_counter() - started
    for layer, per in id_scores.items():
        for name, values in per.items():
            pending.add(exp_dir / "energies" / "id" / layer / f"{name}.npy", values)
            log(f"{layer}: mean ID {name} score {float(np.mean(values)):.4f}")

    sanity: dict[str, dict[str, Any]] = {}
    if s.sanity_dataset:
        started = time.perf_counter()
        sanity = _sanity_check(s, log, end, detectors, id_scores, info.shape, exp_dir, pending)
        seconds["sanity"] = time.perf_counter() - started

    started = time.perf_counter()
    ordered = sorted(runs, key=lambda r: (end_order.index(r.end_layer), front_order.index(r.front_layer)))
    scored, largest_group = _stitch_pass(s, ordered, front, end, detectors, genuine, info.name)
    matrices = OODMatrices(front_layers, end_layers)
    run_results = _stitch_results(log, ordered, scored, matrices, exp_dir, pending)
    seconds["stitches"] = time.perf_counter() - started
    # the same images on both sides: the ID set is the evaluation set, read from the same place
    paired = id_info.name == info.name and (s.id_data_root is None or s.id_data_root == s.data_root)
    if s.bootstrap.enabled:
        started = time.perf_counter()
        attach_intervals(matrices, genuine.scores, genuine.norms, s.bootstrap, paired=paired, convention=s)
        seconds["bootstrap"] = time.perf_counter() - started
    seconds["group_size"] = largest_group
    extra = {
        "results_dir": str(results_dir),
        "experiment": label,
        "config_key": key,
        "eval_dataset": info.name,
        "id_dataset": id_info.name,
        "test_samples": s.test_samples,
        "front": first.front,
        "end": first.end,
        "detector_ids": ids,
        "detector_settings": {
            layer: {name: det.describe() for name, det in per.items()} for layer, per in detectors.items()
        },
        "sanity_dataset": s.sanity_dataset,
        "sanity": sanity,
        "runs": {name: r.to_dict() for name, r in run_results.items()},
        "seconds": seconds,
    }
    pending.write()
    matrices.save(exp_dir, extra)
    return ExperimentOOD(label, matrices, run_results, sanity, ids, seconds, str(exp_dir), genuine, paired)


def evaluate_results_dir(
    results_dir: str | Path,
    settings: ResultsOODSettings | None = None,
    *,
    detector_dir: str | None = None,
    out_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> list[ExperimentOOD]:
    """Run the OOD test on every finished stitching run of ``results_dir`` (see the module docstring),
    with the options of ``settings`` (:class:`ResultsOODSettings`; None: its defaults).

    ``detector_dir`` is the energy detectors' registry (``None``: training-free detectors only).
    ``settings.dataset`` is the evaluation set whose test split is stitched (default: the runs' dataset);
    ``settings.id_dataset`` the ID test set for the genuine activations (default: ``dataset``).
    All stitches of an experiment are evaluated in one grouped pass (:mod:`.grouped`), ``group_size``
    stitches per end-suffix pass (None: automatic, as in the grids). ``bootstrap`` (resamples, or a
    :class:`~stitchkit.uncertainty.bootstrap.BootstrapSpec`; 0: none) gives AUROC, AUPR, FPR95 and the
    norm ratio percentile intervals from the per-image scores (:mod:`.per_sample`). Each experiment's files
    go to ``out_dir`` (default ``<results_dir>/ood``); ``log`` takes the lines of progress.
    """
    s = settings or ResultsOODSettings()
    results_dir = Path(results_dir)
    out_root = Path(out_dir) if out_dir is not None else results_dir / "ood"
    _check_inputs_first(out_root, [s.dataset, s.id_dataset, s.sanity_dataset])
    s = replace(s, device=resolve_device(s.device))
    registry = DetectorRegistry(detector_dir) if detector_dir else None
    if registry is None and not s.training_free:
        raise StitchkitError(
            "no detectors: give the energy detectors' folder (-detectors) or training-free detectors (--training-free)"
        )
    groups = _group_runs(results_dir)
    return [
        _evaluate_experiment(
            s, log, key, runs, registry, out_root / _label(runs[0]) if len(groups) > 1 else out_root, results_dir
        )
        for key, runs in groups.items()
    ]


def _model_path(desc: Mapping[str, Any]) -> str:
    path = desc.get("path")
    if path and Path(path).exists():
        return path
    if desc.get("abs_path") and Path(desc["abs_path"]).exists():
        return desc["abs_path"]
    if not path:
        raise StitchkitError(
            "a stitching run's model was given in memory, so the OOD test cannot reload it; stitch saved checkpoints"
        )
    raise StitchkitError(f"the model checkpoint {path!r} recorded in the stitching run does not exist any more")
