"""Probing from features or arrays, no network: :func:`probe_on_features` (pooled features, full
rank or the fixed basis) and :func:`probe_activations` (activations given as arrays or tensors),
both training a :class:`~.bank.ProbeBank` on in-memory batches (:func:`tensor_loader`). The
conventions are described in :mod:`.probe`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from ..activations.low_rank import LowRankBasis
from ..errors import StitchkitError
from ..ranks import Rank, check_ranks, feature_count
from ..utils.device import resolve_device
from .bank import BatchSource, FeatureStats, ProbeBank, probe_specs, train_probe_bank
from .probe import ProbeConfig, ProbeReport, ProbeResult, config_record, pool_activation


def tensor_loader(tensors: Sequence[Tensor], batch_size: int, *, shuffle: bool) -> DataLoader:
    """Mini-batches of in-memory tensors, indexed a whole batch at a time (no per-item collation). The
    sampler is the one a ``DataLoader(shuffle=...)`` uses, so the batches are the same as those of an
    image loader of the same length under the same seed."""
    dataset = TensorDataset(*tensors)
    order = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    return DataLoader(dataset, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False))


def _pooled_source(layers: Sequence[str]) -> BatchSource:
    def source(batch, device):
        return {layer: batch[i].to(device, non_blocking=True) for i, layer in enumerate(layers)}, batch[-1].to(
            device, non_blocking=True
        )

    return source


def probe_on_features(
    train_features: Mapping[str, Tensor],
    train_labels: Tensor,
    test_features: Mapping[str, Tensor],
    test_labels: Tensor,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    bases: Mapping[str, LowRankBasis | None],
    ranks: Sequence[Rank],
    num_classes: int,
    config: ProbeConfig,
) -> list[ProbeResult]:
    """Train probes on pooled features (full rank or the fixed basis): the fast path, no network; on
    ``config.device``."""
    device = resolve_device(config.device)
    layers = list(train_features)
    bank = ProbeBank(
        probe_specs(shapes, layers, ranks),
        num_classes,
        bases=bases,
        low_rank_mode="fixed",
        token_pool=config.token_pool,
        pooled_input=True,
        seed=config.seed,
    )
    train_loader = tensor_loader(
        [*(train_features[layer].float() for layer in layers), torch.as_tensor(train_labels).long()],
        config.batch_size,
        shuffle=True,
    )
    test_loader = tensor_loader(
        [*(test_features[layer].float() for layer in layers), torch.as_tensor(test_labels).long()],
        config.batch_size,
        shuffle=False,
    )
    return train_probe_bank(bank, _pooled_source(layers), train_loader, test_loader, config, device)


def _as_tensor(x) -> Tensor:
    return x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))


def _check_activations(
    train: Mapping[str, Any], test: Mapping[str, Any], train_labels: Tensor, test_labels: Tensor
) -> dict[str, tuple[int, ...]]:
    """Each layer's per-sample activation shape, after checking that train and test agree on it and that
    every layer has one activation per label."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in train:
        tr, te = _as_tensor(train[layer]), _as_tensor(test[layer])
        if tr.shape[1:] != te.shape[1:]:
            raise StitchkitError(
                f"layer {layer!r}: train activations {tuple(tr.shape)} and test activations {tuple(te.shape)} differ "
                f"in shape"
            )
        if tr.shape[0] != train_labels.shape[0] or te.shape[0] != test_labels.shape[0]:
            raise StitchkitError(
                f"layer {layer!r}: {tr.shape[0]}/{te.shape[0]} activations but "
                f"{train_labels.shape[0]}/{test_labels.shape[0]} labels"
            )
        shapes[layer] = tuple(int(s) for s in tr.shape[1:])
        feature_count(shapes[layer])
    return shapes


def _pooled_train_and_test(
    train: Mapping[str, Any], test: Mapping[str, Any], config: ProbeConfig, need_basis: bool
) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, LowRankBasis | None]]:
    """Every layer's pooled training and test features and (with ``need_basis``) the training set's
    fixed low-rank basis, the training activations streamed in slices of ``config.feature_batch_size``."""
    train_feats, test_feats, bases = {}, {}, {}
    for layer in train:
        stats = FeatureStats(config.token_pool, need_basis=need_basis)
        stats.update_in_slices(_as_tensor(train[layer]), config.feature_batch_size, as_float=True)
        train_feats[layer], bases[layer] = stats.features(), stats.basis()
        test_feats[layer] = pool_activation(_as_tensor(test[layer]).float(), config.token_pool)
    return train_feats, test_feats, bases


def _probe_raw_per_batch(
    train: Mapping[str, Any],
    train_labels: Tensor,
    test: Mapping[str, Any],
    test_labels: Tensor,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    ranks: Sequence[Rank],
    num_classes: int,
    config: ProbeConfig,
    device: torch.device,
) -> list[ProbeResult]:
    """Probes whose low rank is the original's per-batch SVD, which needs every batch's raw activation."""
    layers = list(train)
    bank = ProbeBank(
        probe_specs(shapes, layers, ranks),
        num_classes,
        low_rank_mode="per_batch",
        token_pool=config.token_pool,
        seed=config.seed,
    )
    return train_probe_bank(
        bank,
        _pooled_source(layers),
        tensor_loader(
            [*(_as_tensor(train[layer]).float() for layer in layers), train_labels], config.batch_size, shuffle=True
        ),
        tensor_loader(
            [*(_as_tensor(test[layer]).float() for layer in layers), test_labels], config.batch_size, shuffle=False
        ),
        config,
        device,
    )


def probe_activations(
    train: Mapping[str, Any],
    train_labels,
    test: Mapping[str, Any],
    test_labels,
    *,
    ranks: Sequence[Rank] | None = None,
    num_classes: int | None = None,
    config: ProbeConfig | None = None,
) -> ProbeReport:
    """Linear probes on activations given as arrays or tensors: ``{layer: (N, C, H, W) | (N, T, D) | (N, D)}``
    for the training and the test samples, with integer labels.

    Every (layer, rank) combination is trained (``ranks``: ints and None for full rank; default full
    rank only). ``config`` (default: :class:`ProbeConfig`'s defaults) says how, and on which ``device``.
    Returns the final test accuracies as a :class:`ProbeReport`.
    """
    config = (config or ProbeConfig()).validate()
    ranks = check_ranks(ranks)
    device = resolve_device(config.device)
    started = time.perf_counter()
    if not train:
        raise StitchkitError("no layers given to probe")
    if set(train) != set(test):
        raise StitchkitError(
            f"train and test activations must have the same layers, got {sorted(train)} and {sorted(test)}"
        )
    train_labels, test_labels = _as_tensor(train_labels).long(), _as_tensor(test_labels).long()
    shapes = _check_activations(train, test, train_labels, test_labels)
    if num_classes is None:
        num_classes = int(max(int(train_labels.max()), int(test_labels.max())) + 1)
    low = any(r is not None for r in ranks)
    per_batch = config.low_rank_mode == "per_batch" and low
    if per_batch:
        results = _probe_raw_per_batch(
            train,
            train_labels,
            test,
            test_labels,
            shapes=shapes,
            ranks=ranks,
            num_classes=num_classes,
            config=config,
            device=device,
        )
    else:
        train_feats, test_feats, bases = _pooled_train_and_test(train, test, config, need_basis=low)
        results = probe_on_features(
            train_feats,
            train_labels,
            test_feats,
            test_labels,
            shapes=shapes,
            bases=bases,
            ranks=ranks,
            num_classes=num_classes,
            config=replace(config, device=str(device)),
        )
    info = {
        "num_classes": num_classes,
        "train_samples": int(train_labels.shape[0]),
        "test_samples": int(test_labels.shape[0]),
        "seconds": time.perf_counter() - started,
        "path": "per-batch raw activations" if per_batch else "pooled features",
    }
    return ProbeReport(results, config_record(config), info)
