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
  activation batches (logits from the end network's suffix, or given);
* :func:`stitched_batches` — stitched activation batches from a front prefix and a stitching layer;
* :func:`check_detectors` — the detectors' sanity check (genuine ID test activations vs another
  dataset's, e.g. ``digits`` offline where the original used SVHN);
* :class:`~.matrices.OODMatrices` (:mod:`.matrices`) — front × end matrices of accuracy, AUROC, AUPR and FPR95, written as CSV/JSON.

Scores are outlier scores (higher = more OOD); metrics follow :mod:`stitchkit.ood.metrics`'
convention argument (default: ID positive, as the original).

What lets a reader interpret an AUROC is recorded beside it: each side's score distribution
(:class:`~.metrics.ValueSummary` in the metrics) and the activation norms (:mod:`.stitch_record`),
streamed in the same passes. An AUROC far below ½ means the stitched activations score as *more*
typical than the genuine ones; a norm ratio far from 1 is one reason a detector may do that.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..activations.extract import model_fingerprint
from ..data import dataset_info, get_dataset
from ..data.loading import batches_of, sample_subset
from ..errors import StitchkitError
from ..models.layers import layered
from ..utils.progress import progress_bar
from .detectors import Detector, make_detector, pool_features
from .metrics import OODMetricsResult, ValueSummary, ood_metrics
from .stitch_record import StitchOODResult, activation_norms  # the record lives there; importable from here as before

DetectorsByLayer = Mapping[str, Mapping[str, Detector]]


@dataclass
class GenuineActivations:
    """One pass of a model over a set: per layer, each detector's outlier scores of its genuine
    activations (``scores[layer][detector]``) and each sample's activation norm (``norms[layer]``,
    :func:`activation_norms`; empty when not asked for)."""

    scores: dict[str, dict[str, np.ndarray]]
    norms: dict[str, np.ndarray]


def genuine_scores(model: nn.Module, detectors: DetectorsByLayer, data: Any, **options: Any) -> dict[str, dict[str, np.ndarray]]:
    """Outlier scores of ``model``'s genuine activations, ``{layer: {detector: scores}}``
    (:func:`genuine_pass` without the norms)."""
    return genuine_pass(model, detectors, data, norms=False, **options).scores


@torch.no_grad()
def genuine_pass(
    model: nn.Module,
    detectors: DetectorsByLayer,
    data: Any,
    *,
    norms: bool = True,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    workers: int = 0,
    progress: bool = False,
    desc: str = "ID scores",
) -> GenuineActivations:
    """Outlier scores of ``model``'s genuine activations and (``norms``) each sample's activation norm,
    for every layer of ``detectors``.

    One pass of the model's prefix up to the last layer in ``detectors`` over ``data`` (a dataset or a
    loader of ``(images, labels)``).
    """
    layers = [layer for layer in layered(model).layers if layer in detectors]
    unknown = [layer for layer in detectors if layer not in layers]
    if unknown:
        layered(model).check_layer(unknown[0])
    device = torch.device(device)
    was_training = model.training
    model.eval()
    extractor = layered(model).extractor(layers)
    out: dict[str, dict[str, list[Tensor]]] = {layer: {name: [] for name in detectors[layer]} for layer in layers}
    norm_parts: dict[str, list[Tensor]] = {layer: [] for layer in layers} if norms else {}
    try:
        for batch in progress_bar(batches_of(data, batch_size, workers=workers, data_path="loader"), desc, progress):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            acts = extractor(x.to(device, non_blocking=True))
            for layer in layers:
                for name, det in detectors[layer].items():
                    out[layer][name].append(det.predict(acts[layer]).detach().float().cpu())
                if norms:
                    norm_parts[layer].append(activation_norms(acts[layer]).cpu())
    finally:
        model.train(was_training)
    return GenuineActivations({layer: {name: torch.cat(v).numpy() for name, v in per.items()} for layer, per in out.items()},
                              {layer: torch.cat(parts).numpy() for layer, parts in norm_parts.items()})


@torch.no_grad()
def fit_training_free(
    model: nn.Module,
    layers: Sequence[str],
    data: Any,
    *,
    names: Sequence[str] = ("mahalanobis", "knn"),
    options: Mapping[str, Mapping[str, Any]] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    workers: int = 0,
    progress: bool = False,
) -> dict[str, dict[str, Detector]]:
    """Training-free detectors for each layer, fitted on ``model``'s genuine activations of ``data`` in
    one pass (features are pooled as they stream, so memory stays small).

    ``options`` maps a detector name to its keyword options (e.g. ``{"knn": {"k": 10}}``).
    """
    options = options or {}
    cut = layered(model)
    layers = [cut.check_layer(layer) for layer in layers]
    templates = {name: make_detector(name, **dict(options.get(name, {}))) for name in names}
    pools = sorted({getattr(det, "pool", "avg") for det in templates.values()})
    device = torch.device(device)
    was_training = model.training
    model.eval()
    extractor = cut.extractor(layers)
    feats: dict[tuple[str, str], list[Tensor]] = {(layer, pool): [] for layer in layers for pool in pools}
    labels: list[Tensor] = []
    try:
        for batch in progress_bar(batches_of(data, batch_size, workers=workers, data_path="loader"), "fit detectors", progress):
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


def _unpack(batch: Any) -> tuple[Tensor, Tensor | None, Tensor | None]:
    if isinstance(batch, Tensor):
        return batch, None, None
    if isinstance(batch, Mapping):
        return batch["stitched"], batch.get("labels"), batch.get("logits")
    items = list(batch) + [None, None]
    return items[0], items[1], items[2]


@torch.no_grad()
def evaluate_stitched(
    end_model: nn.Module,
    end_layer: str,
    detectors: Mapping[str, Detector] | Detector,
    stitched: Iterable[Any],
    *,
    id_scores: Mapping[str, Any],
    id_norms: Any = None,
    positive: str = "id",
    tpr: float = 0.95,
    fpr_rule: str = "closest",
    front_layer: str | None = None,
    progress: bool = False,
) -> StitchOODResult:
    """Accuracy and OOD metrics of one stitch at ``end_layer``, from one pass over its activations.

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
        positive, tpr, fpr_rule: the metric convention (:func:`stitchkit.ood.metrics.ood_metrics`).
    """
    if isinstance(detectors, Detector):
        detectors = {detectors.name: detectors}
    missing = [name for name in detectors if name not in id_scores]
    if missing:
        raise StitchkitError(f"no ID scores for detector(s) {', '.join(missing)} at layer {end_layer!r}")
    started = time.perf_counter()
    suffix = None
    was_training = end_model.training
    end_model.eval()
    hits, n, n_labelled = 0, 0, 0
    scores: dict[str, list[Tensor]] = {name: [] for name in detectors}
    norms: list[Tensor] = []
    try:
        for batch in progress_bar(stitched, f"stitched {front_layer or ''}->{end_layer}", progress):
            act, labels, logits = _unpack(batch)
            if labels is not None:
                if logits is None:
                    if suffix is None:
                        suffix = layered(end_model).suffix(end_layer)
                    logits = suffix(act)
                labels = torch.as_tensor(labels).to(logits.device)
                hits += int((logits.argmax(-1) == labels).sum())
                n_labelled += int(labels.shape[0])
            for name, det in detectors.items():
                scores[name].append(det.predict(act).detach().float().cpu())
            norms.append(activation_norms(act).cpu())
            n += int(act.shape[0])
    finally:
        end_model.train(was_training)
    if n == 0:
        raise StitchkitError(f"no stitched activations to evaluate at layer {end_layer!r}")
    ood = {name: torch.cat(v).numpy() for name, v in scores.items()}
    metrics = {
        name: ood_metrics(id_scores[name], ood[name], positive=positive, tpr=tpr, fpr_rule=fpr_rule, score=detectors[name].name)
        for name in detectors
    }
    accuracy = hits / n_labelled if n_labelled else math.nan
    genuine = None if id_norms is None else ValueSummary.of(id_norms, f"genuine activation norms at {end_layer!r}")
    norm_array = torch.cat(norms).numpy()
    return StitchOODResult(end_layer, accuracy, n, metrics, ood, front_layer=front_layer, seconds=time.perf_counter() - started,
                           stitched_norm=ValueSummary.of(norm_array), genuine_norm=genuine, norms=norm_array)


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
        return {"conventions": self.conventions,
            "model": self.model, "model_hash": self.model_hash, "id_dataset": self.id_dataset, "sanity_dataset": self.sanity_dataset,
            "layers": self.layers, "detector_ids": self.detector_ids, "seconds": self.seconds,
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


def load_layer_detectors(registry: Any, model: nn.Module, layers: Sequence[str], *, source_path: str | None = None,
                         device: Any = None, id_dataset: str | None = None) -> dict[str, Detector]:
    """The registry's energy detector for each layer of ``model`` (matched by content hash)."""
    source_hash = model_fingerprint(model)
    out = {}
    for layer in layers:
        key, _ = registry.lookup(layer, source_hash=source_hash, source_path=source_path, id_dataset=id_dataset)
        out[layer] = registry.load(key, device=device)
    return out


def check_detectors(
    model: nn.Module,
    layers: Sequence[str],
    *,
    id_dataset: str,
    sanity_dataset: str = "digits",
    registry: Any = None,
    training_free: Sequence[str] = (),
    training_free_options: Mapping[str, Mapping[str, Any]] | None = None,
    fit_samples: int = 10_000,
    id_samples: int | None = None,
    sanity_samples: int | None = None,
    data_root: str | None = None,
    sanity_root: str | None = None,
    positive: str = "id",
    tpr: float = 0.95,
    fpr_rule: str = "closest",
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    model_path: str | None = None,
    progress: bool = False,
    seed: int = 0,
) -> DetectorCheck:
    """Can each layer's detectors tell the model's genuine activations on the ID test set from its
    activations on ``sanity_dataset`` (converted to the ID input shape)? The original's ``-scd``.

    Energy detectors come from ``registry`` (when given); ``training_free`` names Mahalanobis / k-NN
    detectors fitted here on ``fit_samples`` random ID train images (no augmentation).
    """
    info = dataset_info(id_dataset)
    device = torch.device(device)
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
    if training_free:
        started = time.perf_counter()
        fit_set = sample_subset(get_dataset(info.name, "train", root=data_root, augment=False), fit_samples, seed=seed,
                                clamp=f"--fit-samples: the training split of {info.name}")
        fitted = fit_training_free(model, layers, fit_set, names=training_free, options=training_free_options, device=device,
                                   batch_size=batch_size, progress=progress)
        for layer in layers:
            detectors[layer].update(fitted[layer])
        seconds["fit_training_free"] = time.perf_counter() - started
    if not any(detectors.values()):
        raise StitchkitError("no detectors to check: give a detector registry (-detectors) or training-free detectors")
    started = time.perf_counter()
    id_set = sample_subset(get_dataset(info.name, "test", root=data_root), id_samples, clamp=f"--id-samples: the test split of {info.name}")
    id_s = genuine_scores(model, detectors, id_set, device=device, batch_size=batch_size, progress=progress, desc="ID test scores")
    seconds["id_scores"] = time.perf_counter() - started
    started = time.perf_counter()
    sanity_set = sample_subset(get_dataset(sanity_dataset, "test", root=sanity_root or data_root, shape=info.shape), sanity_samples,
                               clamp=f"--sanity-samples: the test split of {sanity_dataset}")
    sc_s = genuine_scores(model, detectors, sanity_set, device=device, batch_size=batch_size, progress=progress, desc=f"{sanity_dataset} scores")
    seconds["sanity_scores"] = time.perf_counter() - started
    metrics = {
        layer: {name: ood_metrics(id_s[layer][name], sc_s[layer][name], positive=positive, tpr=tpr, fpr_rule=fpr_rule, score=detectors[layer][name].name)
                for name in detectors[layer]}
        for layer in layers
    }
    return DetectorCheck(model_path, model_fingerprint(model), info.name, sanity_dataset, list(layers), metrics, ids, seconds, id_s, sc_s)
