"""The OOD test of stitched representations (the original's ``exec_eval_stitcher_ood.py``, spec 1.5).

For an end network and one of its layers L, a detector trained on L's activations scores

* **ID**: the end network's *genuine* activations at L for the ID test set, and
* **OOD**: the *stitched* activations (what the stitching layer feeds into L) for the evaluation test
  set.

If the detector cannot tell them apart (AUROC ≈ 0.5) the stitch feeds the end network representations
that look like its own; a high AUROC means the stitched representation is out-of-distribution for the
end network even when the stitched accuracy is high (Balogh & Jelasity 2025, claim 3).

The functions here work on activations and do not depend on how a stitch is built:

* :func:`genuine_pass` / :func:`genuine_scores` — scores (and activation norms) of genuine activations
  for several layers in one pass of the model;
* :func:`fit_training_free` — Mahalanobis / k-NN detectors fitted on genuine activations, one pass;
* :func:`evaluate_stitched` — accuracy and OOD metrics of one stitch from ONE pass over its stitched
  activation batches (logits from the end network's suffix, or given): the per-stitch reference mode of
  the one scoring path, :func:`.grouped.grouped_stitch_scores`;
* :func:`stitched_batches` — stitched activation batches from a front prefix and a stitching layer;
* :func:`check_detectors` — the detectors' sanity check (genuine ID test activations vs another
  dataset's, e.g. ``digits`` offline where the original used SVHN), its options in :class:`DetectorCheckSettings`;
* :class:`~.matrices.OODMatrices` (:mod:`.matrices`) — front × end matrices of accuracy, AUROC, AUPR and FPR95, written
  as CSV/JSON.

Scores are outlier scores (higher = more OOD); metrics follow :mod:`stitchkit.ood.metrics`'
convention argument (default: ID positive, as the original).

What lets a reader interpret an AUROC is recorded beside it: each side's score distribution
(:class:`~.metrics.ValueSummary` in the metrics) and the activation norms (:mod:`.stitch_record`),
streamed in the same passes. An AUROC far below ½ means the stitched activations score as *more*
typical than the genuine ones; a norm ratio far from 1 is one reason a detector may do that.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..activations.extract import model_fingerprint
from ..data import dataset_info, get_dataset
from ..data.loading import batches_of, sample_subset
from ..errors import StitchkitError
from ..models.layers import layered
from ..utils.progress import progress_bar
from . import grouped
from .detectors import Detector, make_detector, pool_features
from .metrics import OODConvention, OODMetricsResult
from .settings import DetectorFit, PassOptions
from .stitch_record import StitchOODResult, activation_norms  # the record lives there; importable from here as before

DetectorsByLayer = Mapping[str, Mapping[str, Detector]]


@dataclass
class GenuineActivations:
    """One pass of a model over a set: per layer, each detector's outlier scores of its genuine
    activations (``scores[layer][detector]``) and each sample's activation norm (``norms[layer]``,
    :func:`activation_norms`; empty when not asked for)."""

    scores: dict[str, dict[str, np.ndarray]]
    norms: dict[str, np.ndarray]


def genuine_scores(
    model: nn.Module,
    detectors: DetectorsByLayer,
    data: Any,
    scoring: PassOptions | None = None,
    *,
    desc: str = "ID scores",
) -> dict[str, dict[str, np.ndarray]]:
    """Outlier scores of ``model``'s genuine activations, ``{layer: {detector: scores}}``
    (:func:`genuine_pass` without the norms)."""
    return genuine_pass(model, detectors, data, scoring, norms=False, desc=desc).scores


@torch.no_grad()
def genuine_pass(
    model: nn.Module,
    detectors: DetectorsByLayer,
    data: Any,
    scoring: PassOptions | None = None,
    *,
    norms: bool = True,
    desc: str = "ID scores",
) -> GenuineActivations:
    """Outlier scores of ``model``'s genuine activations and (``norms``) each sample's activation norm,
    for every layer of ``detectors``.

    One pass of the model's prefix up to the last layer in ``detectors`` over ``data`` (a dataset or a
    loader of ``(images, labels)``), run as ``scoring`` says (device, batch size, workers, progress).
    """
    scoring = scoring or PassOptions()
    layers = [layer for layer in layered(model).layers if layer in detectors]
    unknown = [layer for layer in detectors if layer not in layers]
    if unknown:
        layered(model).check_layer(unknown[0])
    device = torch.device(scoring.device)
    was_training = model.training
    model.eval()
    extractor = layered(model).extractor(layers)
    out: dict[str, dict[str, list[Tensor]]] = {layer: {name: [] for name in detectors[layer]} for layer in layers}
    norm_parts: dict[str, list[Tensor]] = {layer: [] for layer in layers} if norms else {}
    try:
        batches = batches_of(data, scoring.batch_size, workers=scoring.workers, data_path="loader")
        for batch in progress_bar(batches, desc, scoring.progress):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            acts = extractor(x.to(device, non_blocking=True))
            for layer in layers:
                for name, det in detectors[layer].items():
                    out[layer][name].append(det.predict(acts[layer]).detach().float().cpu())
                if norms:
                    norm_parts[layer].append(activation_norms(acts[layer]).cpu())
    finally:
        model.train(was_training)
    return GenuineActivations(
        {layer: {name: torch.cat(v).numpy() for name, v in per.items()} for layer, per in out.items()},
        {layer: torch.cat(parts).numpy() for layer, parts in norm_parts.items()},
    )


@torch.no_grad()
def fit_training_free(
    model: nn.Module,
    layers: Sequence[str],
    data: Any,
    *,
    names: Sequence[str] = ("mahalanobis", "knn"),
    options: Mapping[str, Mapping[str, Any]] | None = None,
    scoring: PassOptions | None = None,
) -> dict[str, dict[str, Detector]]:
    """Training-free detectors for each layer, fitted on ``model``'s genuine activations of ``data`` in
    one pass (features are pooled as they stream, so memory stays small), run as ``scoring`` says.

    ``options`` maps a detector name to its keyword options (e.g. ``{"knn": {"k": 10}}``).
    """
    scoring = scoring or PassOptions()
    options = options or {}
    cut = layered(model)
    layers = [cut.check_layer(layer) for layer in layers]
    templates = {name: make_detector(name, **dict(options.get(name, {}))) for name in names}
    pools = sorted({getattr(det, "pool", "avg") for det in templates.values()})
    device = torch.device(scoring.device)
    was_training = model.training
    model.eval()
    extractor = cut.extractor(layers)
    feats: dict[tuple[str, str], list[Tensor]] = {(layer, pool): [] for layer in layers for pool in pools}
    labels: list[Tensor] = []
    try:
        batches = batches_of(data, scoring.batch_size, workers=scoring.workers, data_path="loader")
        for batch in progress_bar(batches, "fit detectors", scoring.progress):
            x, y = batch[0], batch[1]
            acts = extractor(x.to(device, non_blocking=True))
            for layer in layers:
                for pool in pools:
                    feats[(layer, pool)].append(pool_features(acts[layer], pool).float().cpu())
            labels.append(torch.as_tensor(y).cpu())
    finally:
        model.train(was_training)
    y_all = torch.cat(labels)
    fitted: dict[str, dict[str, Detector]] = {}
    for layer in layers:
        fitted[layer] = {}
        for name in names:
            det = make_detector(name, **dict(options.get(name, {})))
            pooled = torch.cat(feats[(layer, getattr(det, "pool", "avg"))])
            fitted[layer][name] = det.fit(pooled, y_all)  # 2-D features: pooling is the identity
    return fitted


@torch.no_grad()
def evaluate_stitched(
    end_model: nn.Module,
    end_layer: str,
    detectors: Mapping[str, Detector] | Detector,
    stitched: Iterable[Any],
    *,
    id_scores: Mapping[str, Any],
    id_norms: Any = None,
    convention: OODConvention | None = None,
    front_layer: str | None = None,
    progress: bool = False,
) -> StitchOODResult:
    """Accuracy and OOD metrics of one stitch at ``end_layer``, from one pass over its activations: the
    per-stitch reference mode (:class:`~.grouped.StitchedActivations`) of the one scoring path,
    :func:`~.grouped.grouped_stitch_scores`.

    Args:
        end_model: the end network (frozen; it runs from ``end_layer`` on when logits are not given).
        detectors: one detector or ``{name: detector}`` for ``end_layer``.
        stitched: batches of stitched activations — ``stitched``, ``(stitched, labels)``,
            ``(stitched, labels, logits)`` or dicts with those keys. The accuracy needs labels; logits
            default to the end network's suffix applied to the stitched activation.
        id_scores: ``{name: scores}`` of the end network's genuine activations on the ID test set
            (:func:`genuine_scores`), the ID side of the metrics.
        id_norms: the genuine activations' norms at ``end_layer`` on the same ID test set
            (:func:`genuine_pass`), for the norm ratio (None: the stitched norms only).
        convention: the metric convention (:class:`~.metrics.OODConvention`; None: its defaults).
    """
    if isinstance(detectors, Detector):
        detectors = {detectors.name: detectors}
    missing = [name for name in detectors if name not in id_scores]
    if missing:
        raise StitchkitError(f"no ID scores for detector(s) {', '.join(missing)} at layer {end_layer!r}")
    stitch = grouped.StitchedActivations(end_model, end_layer, front_layer)
    was_training = end_model.training
    end_model.eval()
    try:
        [scored] = grouped.grouped_stitch_scores(stitch, stitched, {end_layer: detectors}, progress=progress)
    finally:
        end_model.train(was_training)
    if scored.n == 0:
        raise StitchkitError(f"no stitched activations to evaluate at layer {end_layer!r}")
    genuine_norms = None if id_norms is None else {end_layer: id_norms}
    [result] = grouped.stitch_results(
        [stitch], [scored], {end_layer: detectors}, {end_layer: id_scores}, convention or OODConvention(), genuine_norms
    )
    return result


@torch.no_grad()
def stitched_batches(
    front: nn.Module,
    front_layer: str,
    stitching_layer: nn.Module,
    data: Any,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    workers: int = 0,
) -> Iterable[tuple[Tensor, Tensor]]:
    """``(stitched activation, labels)`` batches: the front network up to ``front_layer`` only, then
    the stitching layer. Feed them to :func:`evaluate_stitched`."""
    device = torch.device(device)
    front.eval()
    stitching_layer.eval()
    prefix = layered(front).prefix(front_layer)
    for x, y in batches_of(data, batch_size, workers=workers, data_path="loader"):
        yield stitching_layer(prefix(x.to(device, non_blocking=True))), y


# ------------------------------------------------------------------------------------------------
# detector sanity checks


@dataclass
class DetectorCheck:
    """Per layer and detector: metrics of genuine ID test activations vs a sanity dataset's."""

    model: str | None
    model_hash: str
    id_dataset: str
    sanity_dataset: str
    layers: list[str]
    metrics: dict[str, dict[str, OODMetricsResult]]
    detector_ids: dict[str, str | None]
    seconds: dict[str, float]
    id_scores: dict[str, dict[str, np.ndarray]] = field(repr=False, default_factory=dict)
    sanity_scores: dict[str, dict[str, np.ndarray]] = field(repr=False, default_factory=dict)
    #: what the numbers depend on besides the options, e.g. data_provenance (stitchkit.data.provenance)
    conventions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "conventions": self.conventions,
            "model": self.model,
            "model_hash": self.model_hash,
            "id_dataset": self.id_dataset,
            "sanity_dataset": self.sanity_dataset,
            "layers": self.layers,
            "detector_ids": self.detector_ids,
            "seconds": self.seconds,
            "metrics": {layer: {name: m.to_dict() for name, m in per.items()} for layer, per in self.metrics.items()},
        }

    def table(self) -> str:
        names = list(next(iter(self.metrics.values())).keys()) if self.metrics else []
        head = f"{'layer':<12}" + "".join(f"{n + ' AUROC':>18}{'AUPR':>8}{'FPR95':>8}" for n in names)
        rows = [head]
        for layer in self.layers:
            row = f"{layer:<12}"
            for name in names:
                m = self.metrics[layer][name]
                row += f"{m.auroc:>18.4f}{m.aupr:>8.4f}{m.fpr95:>8.4f}"
            rows.append(row)
        if self.metrics:
            any_m = next(iter(next(iter(self.metrics.values())).values()))
            rows.append(f"convention: {any_m.convention}")
        return "\n".join(rows)


def load_layer_detectors(
    registry: Any,
    model: nn.Module,
    layers: Sequence[str],
    *,
    source_path: str | None = None,
    device: Any = None,
    id_dataset: str | None = None,
) -> dict[str, Detector]:
    """The registry's energy detector for each layer of ``model`` (matched by content hash)."""
    source_hash = model_fingerprint(model)
    out = {}
    for layer in layers:
        key, _ = registry.lookup(layer, source_hash=source_hash, source_path=source_path, id_dataset=id_dataset)
        out[layer] = registry.load(key, device=device)
    return out


@dataclass(frozen=True, kw_only=True)
class DetectorCheckSettings(OODConvention, DetectorFit, PassOptions):
    """The options of :func:`check_detectors` (``stitchkit detector check``): the sanity dataset and the
    samples of each set, where the data are, and the records it carries: the metric convention
    (:class:`~.metrics.OODConvention`), the training-free detectors (:class:`~.settings.DetectorFit`) and
    the pass (:class:`~.settings.PassOptions`)."""

    sanity_dataset: str = "digits"
    id_samples: int | None = None  # the first N ID test images (None: all)
    sanity_samples: int | None = None  # the first N sanity test images (None: all)
    data_root: str | None = None
    sanity_root: str | None = None  # None: data_root


def check_detectors(
    model: nn.Module,
    layers: Sequence[str],
    settings: DetectorCheckSettings | None = None,
    *,
    id_dataset: str,
    registry: Any = None,
    model_path: str | None = None,
) -> DetectorCheck:
    """Can each layer's detectors tell the model's genuine activations on the ID test set from its
    activations on ``settings.sanity_dataset`` (converted to the ID input shape)? The original's ``-scd``.

    Energy detectors come from ``registry`` (when given); ``settings.training_free`` names Mahalanobis / k-NN
    detectors fitted here on ``settings.fit_samples`` random ID train images (no augmentation).
    """
    s = settings or DetectorCheckSettings()
    info = dataset_info(id_dataset)
    device = torch.device(s.device)
    model.to(device).eval()
    seconds: dict[str, float] = {}
    detectors: dict[str, dict[str, Detector]] = {layer: {} for layer in layers}
    ids: dict[str, str | None] = {}
    if registry is not None:
        started = time.perf_counter()
        for layer, det in load_layer_detectors(registry, model, layers, source_path=model_path, device=device).items():
            detectors[layer]["energy"] = det
            ids[layer] = det.meta.get("id")
        seconds["load_energy_detectors"] = time.perf_counter() - started
    if s.training_free:
        started = time.perf_counter()
        train = get_dataset(info.name, "train", root=s.data_root, augment=False)
        fit_set = sample_subset(
            train, s.fit_samples, seed=s.seed, clamp=f"--fit-samples: the training split of {info.name}"
        )
        fitted = fit_training_free(
            model, layers, fit_set, names=s.training_free, options=s.training_free_options, scoring=s
        )
        for layer in layers:
            detectors[layer].update(fitted[layer])
        seconds["fit_training_free"] = time.perf_counter() - started
    if not any(detectors.values()):
        raise StitchkitError("no detectors to check: give a detector registry (-detectors) or training-free detectors")
    started = time.perf_counter()
    id_set = sample_subset(
        get_dataset(info.name, "test", root=s.data_root),
        s.id_samples,
        clamp=f"--id-samples: the test split of {info.name}",
    )
    id_s = genuine_scores(model, detectors, id_set, s, desc="ID test scores")
    seconds["id_scores"] = time.perf_counter() - started
    started = time.perf_counter()
    sanity_test = get_dataset(s.sanity_dataset, "test", root=s.sanity_root or s.data_root, shape=info.shape)
    sanity_set = sample_subset(
        sanity_test, s.sanity_samples, clamp=f"--sanity-samples: the test split of {s.sanity_dataset}"
    )
    sc_s = genuine_scores(model, detectors, sanity_set, s, desc=f"{s.sanity_dataset} scores")
    seconds["sanity_scores"] = time.perf_counter() - started
    metrics = {
        layer: {
            name: s.metrics(id_s[layer][name], sc_s[layer][name], detectors[layer][name].name)
            for name in detectors[layer]
        }
        for layer in layers
    }
    return DetectorCheck(
        model_path,
        model_fingerprint(model),
        info.name,
        s.sanity_dataset,
        list(layers),
        metrics,
        ids,
        seconds,
        id_s,
        sc_s,
    )
