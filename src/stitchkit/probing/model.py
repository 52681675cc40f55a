"""Probing a network: the network and the data are loaded once for every (layer, rank) combination.

:func:`probe_model` takes a model and datasets; :func:`probe_checkpoint` loads a checkpoint and the
dataset's splits first (what ``stitchkit probe`` calls). See :mod:`.probe` for the probes themselves.

Two ways to feed the probes, chosen automatically:

* **features once** — without augmentation (a network trained without it, or ``augment="none"``;
  :func:`resolve_probe_config`) and with full rank or the fixed low-rank basis, the network's prefix (up to the
  deepest requested layer) runs once over the training set and once over the test set; the pooled
  features and the basis statistics are kept, and the probes train on those;
* **prefix per batch** — with augmentation (the original's setting) or the per-batch low rank, the
  frozen prefix runs on every batch, once for all probes. A fixed basis is then estimated on one extra
  pass over the un-augmented training set.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..activations.extract import model_fingerprint
from ..activations.low_rank import LowRankBasis
from ..data import get_dataset
from ..data.augmentation import Augmentation, resolve_augmentation
from ..data.loading import check_subset_size, make_batches, sample_subset
from ..data.provenance import note_provenance
from ..errors import StitchkitError
from ..models.layers import LayeredModel, layered
from ..models.loading import load_for_dataset, recorded_augmentation
from ..ranks import Rank, check_ranks, feature_count, warn_clamped
from ..utils.device import resolve_device
from ..utils.progress import progress_bar
from ..utils.seed import set_seed
from .arrays import probe_on_features
from .bank import FeatureStats, ProbeBank, probe_specs, train_probe_bank
from .probe import ProbeConfig, ProbeReport, config_record


@torch.no_grad()
def feature_pass(
    model: nn.Module,
    layers: Sequence[str],
    data: Dataset,
    *,
    config: ProbeConfig,
    basis_layers: Sequence[str] = (),
    desc: str = "features",
) -> tuple[dict[str, Tensor], dict[str, LowRankBasis | None], Tensor]:
    """One pass of the model's prefix over ``data``: the pooled probe features of every layer, the
    fixed low-rank bases of ``basis_layers`` (all principal directions) and the labels. ``config`` gives
    the pooling (``token_pool``), the pass's batch size (``feature_batch_size``), ``device``,
    ``workers``, ``prefetch`` and ``progress``."""
    device = resolve_device(config.device)
    extractor = layered(model).extractor(list(layers))
    was_training = model.training
    model.eval()
    stats = {layer: FeatureStats(config.token_pool, need_basis=layer in set(basis_layers)) for layer in layers}
    labels: list[Tensor] = []
    loader = make_batches(
        data, config.feature_batch_size, shuffle=False, workers=config.workers, prefetch=config.prefetch, device=device
    )
    try:
        for inputs, targets in progress_bar(loader, desc, config.progress):
            out = extractor(inputs.to(device, non_blocking=True))
            for layer in layers:
                stats[layer].update(out[layer])
            labels.append(torch.as_tensor(targets).long())
    finally:
        model.train(was_training)
    return {k: s.features() for k, s in stats.items()}, {k: s.basis() for k, s in stats.items()}, torch.cat(labels)


def pooled_features(
    activations: Mapping[str, Tensor], layers: Sequence[str], *, token_pool: str = "cls", batch_size: int = 256
) -> dict[str, Tensor]:
    """The probe features of activations extracted for another use (pooled in slices, as
    :func:`feature_pass` pools each batch)."""
    out = {}
    for layer in layers:
        stats = FeatureStats(token_pool, need_basis=False).update_in_slices(activations[layer], batch_size)
        out[layer] = stats.features()
    return out


def low_rank_layers(shapes: Mapping[str, Sequence[int]], ranks: Sequence[Rank]) -> list[str]:
    """The layers whose probes truncate: some rank below the layer's feature count."""
    return [layer for layer, shape in shapes.items() if any(r is not None and r < feature_count(shape) for r in ranks)]


def runs_features_once(config: ProbeConfig, augmented: bool, low_rank: Sequence[str]) -> bool:
    """Whether the probes train on features extracted once (module docstring): no augmentation, and
    full rank or the fixed basis."""
    return not augmented and not (config.low_rank_mode == "per_batch" and bool(low_rank))


def probe_model(
    model: nn.Module,
    layers: Sequence[str] | None,
    data: Mapping[str, Dataset],
    *,
    ranks: Sequence[Rank] | None = None,
    num_classes: int | None = None,
    config: ProbeConfig | None = None,
    test_features: tuple[Mapping[str, Tensor], Tensor] | None = None,
) -> ProbeReport:
    """Probe ``layers`` (default: every stitchable layer) of a frozen ``model`` at every rank.

    ``data`` is what :func:`probe_datasets` gives: ``train``, the un-augmented training set (features,
    the fixed basis); with ``train_augmented`` the probes are trained on that instead, running the
    prefix per batch. ``test`` gives the reported accuracy. ``test_features`` (the pooled features of every layer
    for every item of ``data["test"]``, and the labels, from a pass the caller made anyway) replace the
    test pass where the probes train on features (:func:`runs_features_once`). ``config`` (default:
    :class:`ProbeConfig`'s defaults) says how, and on which ``device`` (the model is left in eval mode there).
    """
    config = (config or ProbeConfig()).validate()
    ranks = check_ranks(ranks)
    train_data, test_data, augmented_train_data = _probe_splits(data)
    check_subset_size(
        config.train_subset, len(train_data), "the probes' training subset (train_subset): the training set"
    )
    if config.train_subset is not None:  # the same images, augmented or not
        train_data = sample_subset(train_data, config.train_subset, seed=config.seed)
        if augmented_train_data is not None:
            augmented_train_data = sample_subset(augmented_train_data, config.train_subset, seed=config.seed)
    dev = resolve_device(config.device)
    config = replace(config, device=str(dev))  # resolved once for every pass
    started = time.perf_counter()
    lm = layered(model)
    layers = lm.resolve(layers or None)
    model.eval().to(dev)  # frozen: it only ever runs under no_grad, and the optimizer sees the probes only
    shapes = lm.shapes(tuple(test_data[0][0].shape), layers)
    for layer in layers:
        feature_count(shapes[layer])
    warn_clamped(ranks, shapes, "probe rank")
    num_classes = num_classes if num_classes is not None else _class_count(model)
    low = low_rank_layers(shapes, ranks)
    if runs_features_once(config, augmented_train_data is not None, low):
        train_feats, bases, train_labels = feature_pass(
            model, layers, train_data, config=config, basis_layers=low, desc="train features"
        )
        if test_features is None:
            test_feats, _, test_labels = feature_pass(model, layers, test_data, config=config, desc="test features")
        else:
            test_feats, test_labels = {layer: test_features[0][layer] for layer in layers}, test_features[1]
        results = probe_on_features(
            train_feats,
            train_labels,
            test_feats,
            test_labels,
            shapes=shapes,
            bases=bases,
            ranks=ranks,
            num_classes=num_classes,
            config=config,
        )
        path = "features once"
    else:
        results = _probe_prefix_per_batch(
            lm, layers, shapes, ranks, low, train_data, augmented_train_data, test_data, num_classes, config
        )
        path = "prefix per batch"
    info = {
        "model": lm.model_name,
        "model_fingerprint": model_fingerprint(model),
        "layers": layers,
        "ranks": ranks,
        "num_classes": num_classes,
        "train_samples": len(augmented_train_data if augmented_train_data is not None else train_data),  # what was used
        "test_samples": len(test_data),
        "augmented": augmented_train_data is not None,
        "path": path,
        "device": str(dev),
        "seconds": time.perf_counter() - started,
    }
    return ProbeReport(results, config_record(config), info)


def _probe_splits(data: Mapping[str, Dataset]) -> tuple[Dataset, Dataset, Dataset | None]:
    """``data``'s training, test and (optional) augmented training sets."""
    unknown = sorted(set(data) - {"train", "test", "train_augmented"})
    if unknown or "train" not in data or "test" not in data:
        raise StitchkitError(
            "probing data is a dict with the keys 'train', 'test' and optionally 'train_augmented'; "
            f"got {', '.join(map(str, data))}"
        )
    return data["train"], data["test"], data.get("train_augmented")


def _class_count(model: nn.Module) -> int:
    num_classes = (getattr(model, "stitchkit_spec", None) or {}).get("num_classes")
    if num_classes is None:
        raise StitchkitError("give num_classes: the model does not say how many classes it has")
    return num_classes


def _probe_prefix_per_batch(
    lm: LayeredModel,
    layers: list[str],
    shapes: Mapping[str, tuple[int, ...]],
    ranks: list[Rank],
    low: list[str],
    train_data: Dataset,
    augmented_train_data: Dataset | None,
    test_data: Dataset,
    num_classes: int,
    config: ProbeConfig,
) -> list:
    """The probes trained with the frozen prefix run on every batch (augmentation, or per-batch low rank);
    a fixed basis first from one pass over the un-augmented training set."""
    dev = resolve_device(config.device)
    bases: dict[str, LowRankBasis | None] = {}
    if low and config.low_rank_mode == "fixed":
        _, bases, _ = feature_pass(lm.model, low, train_data, config=config, basis_layers=low, desc="low-rank basis")
    extractor = lm.extractor(layers)
    bank = ProbeBank(
        probe_specs(shapes, layers, ranks),
        num_classes,
        bases=bases,
        low_rank_mode=config.low_rank_mode,
        token_pool=config.token_pool,
        seed=config.seed,
    )

    def source(batch: Any, device: torch.device):
        with torch.no_grad():
            out = extractor(batch[0].to(device, non_blocking=True))
        return out, batch[1].to(device, non_blocking=True)

    batches = dict(workers=config.workers, prefetch=config.prefetch, device=dev)
    train_loader = make_batches(
        augmented_train_data if augmented_train_data is not None else train_data,
        config.batch_size,
        shuffle=True,
        **batches,
    )
    test_loader = make_batches(test_data, config.batch_size, shuffle=False, **batches)
    return train_probe_bank(bank, source, train_loader, test_loader, config, dev)


def resolve_probe_config(config: ProbeConfig, model: nn.Module) -> tuple[ProbeConfig, Augmentation]:
    """``config`` with its augmentation resolved for ``model`` (``"dataset"`` or ``"none"``; by the
    network's record for ``"network"``, :mod:`stitchkit.data.augmentation`), and the resolution."""
    augmentation = resolve_augmentation(config.augment, recorded_augmentation(model), "the probed network")
    return replace(config, augment=augmentation.name), augmentation


def probe_datasets(
    dataset: str, data_root: str | None = None, *, augment: bool = True, download: bool = True
) -> dict[str, Dataset]:
    """The splits probing needs: ``train`` (un-augmented), ``train_augmented`` (when asked) and ``test``."""
    out = {
        "train": get_dataset(dataset, "train", root=data_root, augment=False, download=download),
        "test": get_dataset(dataset, "test", root=data_root, download=download),
    }
    if augment:
        out["train_augmented"] = get_dataset(dataset, "train", root=data_root, augment=True, download=download)
    return out


def probe_checkpoint(
    model_path: str,
    model_type: str | None = None,
    layers: Sequence[str] | None = None,
    *,
    ranks: Sequence[Rank] | None = None,
    dataset: str | None = None,
    config: ProbeConfig | None = None,
    model_options: dict[str, Any] | None = None,
) -> ProbeReport:
    """``stitchkit probe``: load the checkpoint and the data (from ``config.data_root``) once, probe every
    (layer, rank)."""
    config = (config or ProbeConfig()).validate()
    set_seed(config.seed)
    model, ckpt, info = load_for_dataset(model_path, model_type, dataset=dataset, model_options=model_options)
    name = info.name
    provenance = note_provenance({"": ckpt.dataset}, name)
    config, augmentation = resolve_probe_config(config, model)
    data = probe_datasets(name, config.data_root, augment=augmentation.augment)
    report = probe_model(model, layers, data, ranks=ranks, config=config)
    report.info.update(model_path=str(model_path), dataset=name, augmentation=augmentation.describe())
    report.config["conventions"].update(provenance)
    return report
