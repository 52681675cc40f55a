"""Probing a network: the network and the data are loaded once for every (layer, rank) combination.

:func:`probe_model` takes a model and datasets; :func:`probe_checkpoint` loads a checkpoint and the
dataset's splits first (what ``stitchkit probe`` calls). See :mod:`.probe` for the probes themselves.

Two ways to feed the probes, chosen automatically:

* **features once** — without augmentation (``augment=False``, or a dataset whose training transform
  does not augment) and with full rank or the fixed low-rank basis, the network's prefix (up to the
  deepest requested layer) runs once over the training set and once over the test set; the pooled
  features and the basis statistics are kept, and the probes train on those;
* **prefix per batch** — with augmentation (the original's setting) or the per-batch low rank, the
  frozen prefix runs on every batch, once for all probes. A fixed basis is then estimated on one extra
  pass over the un-augmented training set.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..activations.extract import model_fingerprint
from ..activations.low_rank import LowRankBasis
from ..data.loading import check_subset_size, make_batches, sample_subset
from ..errors import StitchkitError
from ..models.layers import layered
from ..utils.progress import progress_bar
from ..utils.device import resolve_device
from .probe import (
    FeatureStats,
    ProbeBank,
    ProbeConfig,
    ProbeReport,
    Rank,
    check_ranks,
    config_record,
    feature_count,
    probe_on_features,
    probe_specs,
    train_probe_bank,
)
from .ranks import warn_clamped


@torch.no_grad()
def feature_pass(
    model: nn.Module,
    layers: Sequence[str],
    data: Dataset,
    *,
    device: torch.device,
    token_pool: str = "cls",
    basis_layers: Sequence[str] = (),
    batch_size: int = 256,
    workers: int = 0,
    prefetch: int = 1,
    progress: bool = False,
    desc: str = "features",
) -> tuple[dict[str, Tensor], dict[str, LowRankBasis | None], Tensor]:
    """One pass of the model's prefix over ``data``: the pooled probe features of every layer, the
    fixed low-rank bases of ``basis_layers`` (all principal directions) and the labels."""
    extractor = layered(model).extractor(list(layers))
    was_training = model.training
    model.eval()
    stats = {layer: FeatureStats(token_pool, need_basis=layer in set(basis_layers)) for layer in layers}
    labels: list[Tensor] = []
    loader = make_batches(data, batch_size, shuffle=False, workers=workers, prefetch=prefetch, device=device)
    try:
        for inputs, targets in progress_bar(loader, desc, progress):
            out = extractor(inputs.to(device, non_blocking=True))
            for layer in layers:
                stats[layer].update(out[layer])
            labels.append(torch.as_tensor(targets).long())
    finally:
        model.train(was_training)
    return {k: s.features() for k, s in stats.items()}, {k: s.basis() for k, s in stats.items()}, torch.cat(labels)


def probe_model(
    model: nn.Module,
    layers: Sequence[str] | None,
    train_data: Dataset,
    test_data: Dataset,
    *,
    ranks: Sequence[Rank] | None = None,
    augmented_train_data: Dataset | None = None,
    num_classes: int | None = None,
    config: ProbeConfig | None = None,
    device: torch.device | str = "auto",
    workers: int = 0,
    prefetch: int = 1,
) -> ProbeReport:
    """Probe ``layers`` (default: every stitchable layer) of a frozen ``model`` at every rank.

    ``train_data`` is the un-augmented training set (features, the fixed basis); with
    ``augmented_train_data`` the probes are trained on that instead, running the prefix per batch.
    ``test_data`` gives the reported accuracy. The model is left in eval mode on ``device``.
    """
    config = (config or ProbeConfig()).validate()
    ranks = check_ranks(ranks)
    check_subset_size(config.train_subset, len(train_data), "the probes' training subset (train_subset): the training set")
    if config.train_subset is not None:  # the same images, augmented or not
        train_data = sample_subset(train_data, config.train_subset, seed=config.seed)
        if augmented_train_data is not None:
            augmented_train_data = sample_subset(augmented_train_data, config.train_subset, seed=config.seed)
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    started = time.perf_counter()
    lm = layered(model)
    layers = list(dict.fromkeys(layers)) if layers else list(lm.layers)
    for layer in layers:
        lm.check_layer(layer)
    model.eval().to(dev)  # frozen: it only ever runs under no_grad, and the optimizer sees the probes only
    sample = test_data[0][0]
    shapes = lm.shapes(tuple(sample.shape), layers)
    for layer in layers:
        feature_count(shapes[layer])
    warn_clamped(ranks, shapes, "probe rank")
    if num_classes is None:
        spec = getattr(model, "stitchkit_spec", None) or {}
        num_classes = spec.get("num_classes")
        if num_classes is None:
            raise StitchkitError("give num_classes: the model does not say how many classes it has")
    low = [layer for layer in layers if any(r is not None and r < feature_count(shapes[layer]) for r in ranks)]
    per_batch = config.low_rank_mode == "per_batch" and bool(low)
    kw = dict(device=dev, token_pool=config.token_pool, batch_size=config.feature_batch_size, workers=workers, prefetch=prefetch, progress=config.progress)
    if augmented_train_data is None and not per_batch:
        train_feats, bases, train_labels = feature_pass(model, layers, train_data, basis_layers=low, desc="train features", **kw)
        test_feats, _, test_labels = feature_pass(model, layers, test_data, desc="test features", **kw)
        results = probe_on_features(train_feats, train_labels, test_feats, test_labels, shapes=shapes, bases=bases, ranks=ranks,
                                    num_classes=num_classes, config=config, device=dev)
        path = "features once"
    else:
        bases: dict[str, LowRankBasis | None] = {}
        if low and config.low_rank_mode == "fixed":
            _, bases, _ = feature_pass(model, low, train_data, basis_layers=low, desc="low-rank basis", **kw)
        extractor = lm.extractor(layers)
        bank = ProbeBank(probe_specs(shapes, layers, ranks), num_classes, bases=bases, low_rank_mode=config.low_rank_mode,
                         token_pool=config.token_pool, seed=config.seed)

        def source(batch: Any, device: torch.device):
            with torch.no_grad():
                out = extractor(batch[0].to(device, non_blocking=True))
            return out, batch[1].to(device, non_blocking=True)

        train_loader = make_batches(augmented_train_data if augmented_train_data is not None else train_data, config.batch_size,
                                   shuffle=True, workers=workers, prefetch=prefetch, device=dev)
        test_loader = make_batches(test_data, config.batch_size, shuffle=False, workers=workers, prefetch=prefetch, device=dev)
        results = train_probe_bank(bank, source, train_loader, test_loader, config, dev)
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


def load_for_probing(
    model_path: str,
    model_type: str | None = None,
    *,
    dataset: str | None = None,
    data_root: str | None = None,
    model_options: dict[str, Any] | None = None,
    download: bool = True,
) -> tuple[nn.Module, str]:
    """Load a checkpoint and check it fits the dataset; returns the model and the dataset name."""
    from ..data import dataset_info
    from ..models.checkpoint import load_model

    model, ckpt = load_model(model_path, model_type, dataset=dataset, **(model_options or {}))
    name = dataset or ckpt.dataset or "cifar10"
    info = dataset_info(name)
    spec = getattr(model, "stitchkit_spec", {})
    if spec.get("num_classes") != info.num_classes or spec.get("in_channels") != info.shape[0]:
        raise StitchkitError(
            f"model {spec.get('name')} takes {spec.get('in_channels')}-channel inputs with {spec.get('num_classes')} classes, "
            f"but dataset {info.name} has {info.shape[0]} channels and {info.num_classes} classes"
        )
    return model, info.name


def probe_datasets(dataset: str, data_root: str | None = None, *, augment: bool = True, download: bool = True) -> dict[str, Dataset]:
    """The splits probing needs: ``train`` (un-augmented), ``train_augmented`` (when asked) and ``test``."""
    from ..data import get_dataset

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
    data_root: str | None = None,
    config: ProbeConfig | None = None,
    device: str = "auto",
    workers: int = 1,
    prefetch: int = 1,
    model_options: dict[str, Any] | None = None,
) -> ProbeReport:
    """``stitchkit probe``: load the checkpoint and the data once, probe every (layer, rank)."""
    from ..utils.seed import set_seed

    config = (config or ProbeConfig()).validate()
    if workers < 0:
        raise StitchkitError(f"loader workers must be non-negative, got {workers}")
    set_seed(config.seed)
    model, name = load_for_probing(model_path, model_type, dataset=dataset, data_root=data_root, model_options=model_options)
    data = probe_datasets(name, data_root, augment=config.augment)
    report = probe_model(model, layers, data["train"], data["test"], ranks=ranks, augmented_train_data=data.get("train_augmented"),
                         config=config, device=device, workers=workers, prefetch=prefetch)
    report.info.update(model_path=str(model_path), dataset=name)
    return report
