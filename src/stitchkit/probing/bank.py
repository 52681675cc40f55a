"""The probes of :mod:`.probe` as code: a layer's streamed features and fixed-basis statistics
(:class:`FeatureStats`) and many (layer, rank) heads trained together (:class:`ProbeBank`,
:func:`train_probe_bank`); probing from features or arrays is :mod:`.arrays`. The conventions are
described in :mod:`.probe`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..activations.low_rank import LowRankBasis, principal_directions, truncate
from ..errors import StitchkitError
from ..ranks import Rank, feature_count, rank_label
from ..training.loop import EpochLog, LoopSettings, evaluate, fit
from ..training.optim import build_optimizer, build_scheduler
from .probe import ProbeConfig, ProbeResult, pool_activation


class FeatureStats:
    """Streams one layer's probe features and the statistics of its fixed low-rank basis.

    ``update(activation)`` per batch keeps the pooled features and (when a basis is needed) the
    row covariance; ``basis()`` is a :class:`LowRankBasis` holding *all* principal directions in
    descending order, so that the rank-r basis is its first r columns.
    """

    def __init__(self, token_pool: str, need_basis: bool):
        self.token_pool = token_pool
        self.need_basis = need_basis
        self.pooled: list[Tensor] = []
        self._basis: LowRankBasis | None = None
        self.shape: tuple[int, ...] | None = None

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        if self.shape is None:
            self.shape = tuple(int(s) for s in x.shape[1:])
            feature_count(self.shape)  # validates the layout
            if self.need_basis:
                self._basis = LowRankBasis(feature_count(self.shape))
        if self._basis is not None:
            self._basis.update(x)
        self.pooled.append(pool_activation(x, self.token_pool).float().cpu())

    def update_in_slices(self, data: Tensor, batch_size: int, *, as_float: bool = False) -> FeatureStats:
        """:meth:`update` with ``data`` (all the samples, in memory) in slices of ``batch_size``, each
        converted to float32 first with ``as_float``; returns ``self``."""
        for start in range(0, data.shape[0], batch_size):
            part = data[start : start + batch_size]
            self.update(part.float() if as_float else part)
        return self

    def features(self) -> Tensor:
        return torch.cat(self.pooled) if self.pooled else torch.empty(0)

    def basis(self) -> LowRankBasis | None:
        if self._basis is not None and not self._basis.fitted:
            self._basis.finalize()
        return self._basis


# -- the probes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeSpec:
    """One probe: a layer, a rank (None = full) and the layer's per-sample activation shape."""

    layer: str
    rank: Rank
    shape: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.layer}@{rank_label(self.rank)}"

    @property
    def in_features(self) -> int:
        return feature_count(self.shape)


class ProbeBank(nn.Module):
    """Linear probes for several (layer, rank) pairs over one frozen network's activations.

    ``forward(features)`` takes ``{layer: tensor}`` — either the raw activations (``pooled_input=False``)
    or the already pooled features (``pooled_input=True``, only for full rank and the fixed basis) —
    and returns the logits of every probe, in the order of ``specs``.

    The probes of one layer are stored stacked — weights ``(ranks, classes, features)`` — and, with the
    fixed basis, their projections too (``P_r = V_r V_rᵀ``, the identity at full rank), so a batch
    costs two batched products per layer, not a Python loop over probes. Each probe's slice is its own
    (Adam acts element-wise), initialised as ``nn.Linear`` right after ``torch.manual_seed(seed)``.
    """

    def __init__(
        self,
        specs: Sequence[ProbeSpec],
        num_classes: int,
        *,
        bases: Mapping[str, LowRankBasis | None] | None = None,
        low_rank_mode: str = "fixed",
        token_pool: str = "cls",
        pooled_input: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        if not specs:
            raise StitchkitError("no probes requested: give at least one layer")
        self.specs = list(specs)
        self.keys = [s.key for s in self.specs]
        self.low_rank_mode = low_rank_mode
        self.token_pool = token_pool
        self.pooled_input = pooled_input
        self.layers = list(dict.fromkeys(s.layer for s in self.specs))
        self._groups: dict[str, list[int]] = {
            layer: [i for i, s in enumerate(self.specs) if s.layer == layer] for layer in self.layers
        }
        needs = {s.layer for s in self.specs if self._truncates(s)}
        if low_rank_mode != "fixed" and pooled_input and needs:
            raise StitchkitError("per-batch low rank needs the raw activations, not pooled features")
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for g, layer in enumerate(self.layers):
            group = [self.specs[i] for i in self._groups[layer]]
            if len({s.in_features for s in group}) != 1:
                raise StitchkitError(f"probes of layer {layer!r} disagree on its shape")
            weights, biases = [], []
            for spec in group:
                torch.manual_seed(seed)  # each probe starts where it would start alone
                head = nn.Linear(spec.in_features, num_classes)
                weights.append(head.weight.detach().clone())
                biases.append(head.bias.detach().clone())
            self.weights.append(nn.Parameter(torch.stack(weights)))
            self.biases.append(nn.Parameter(torch.stack(biases)))
            if low_rank_mode == "fixed":
                # constants (buffers, moved by .to): the mean and one projector per probe (identity at full rank)
                f = group[0].in_features
                mean, projectors = torch.zeros(f), torch.eye(f).repeat(len(group), 1, 1)
                if layer in needs:
                    basis = (bases or {}).get(layer)
                    if basis is None or not basis.fitted:
                        raise StitchkitError(
                            f"probes of layer {layer!r} at low rank need a fitted low-rank basis of that layer"
                        )
                    mean = basis.mean.float()
                    for k, spec in enumerate(group):
                        if self._truncates(spec):
                            v = basis.basis.float()[:, : spec.rank]
                            projectors[k] = v @ v.T
                self.register_buffer(f"mean_{g}", mean.clone())
                self.register_buffer(f"projectors_{g}", projectors)

    @staticmethod
    def _truncates(spec: ProbeSpec) -> bool:
        return spec.rank is not None and spec.rank < spec.in_features

    def _group_features(self, g: int, x: Tensor) -> Tensor:
        """The features of every probe of layer group ``g``: (probes, batch, features)."""
        group = [self.specs[i] for i in self._groups[self.layers[g]]]
        if self.low_rank_mode == "per_batch" and not self.pooled_input:
            directions = (
                principal_directions(x) if any(self._truncates(s) for s in group) else None
            )  # one decomposition, every rank
            return torch.stack(
                [
                    pool_activation(truncate(x, *directions, s.rank) if self._truncates(s) else x, self.token_pool)
                    for s in group
                ]
            ).float()
        z = (x if self.pooled_input else pool_activation(x, self.token_pool)).float()
        if not any(self._truncates(s) for s in group):
            return z.unsqueeze(0).expand(len(group), -1, -1)
        # the fixed basis applied to the pooled vector (the same as projecting every position, then pooling)
        mean = getattr(self, f"mean_{g}")
        return mean + torch.einsum("bf,rfg->rbg", z - mean, getattr(self, f"projectors_{g}"))

    def _features(self, spec: ProbeSpec, x: Tensor) -> Tensor:
        """The features one probe sees (for inspection and tests)."""
        i = self.specs.index(spec)
        g = self.layers.index(spec.layer)
        return self._group_features(g, x)[self._groups[spec.layer].index(i)]

    def forward(self, features: Mapping[str, Tensor]) -> list[Tensor]:
        out: list[Tensor | None] = [None] * len(self.specs)
        for g, layer in enumerate(self.layers):
            z = self._group_features(g, features[layer])
            logits = torch.einsum("rbf,rkf->rbk", z, self.weights[g]) + self.biases[g][:, None, :]
            for k, i in enumerate(self._groups[layer]):
                out[i] = logits[k]
        return out  # type: ignore[return-value]


BatchSource = Callable[[Any, torch.device], tuple[dict[str, Tensor], Tensor]]


def bank_step(source: BatchSource, record: list[Tensor] | None = None) -> Callable:
    """The training loop's step function for a :class:`ProbeBank`: the summed cross-entropy of all
    probes (see the module docstring) and each probe's hit count as ``acc/<layer>@<rank>``; with
    ``record``, each batch's per-sample hits ((probes, batch) uint8, 1 = right) are appended to it."""

    def step(bank: ProbeBank, batch: Any, device: torch.device):
        features, labels = source(batch, device)
        logits = torch.stack(bank(features))  # (probes, batch, classes): one loss and one count for all probes
        n, classes = labels.shape[0], logits.shape[-1]
        losses = (
            F.cross_entropy(logits.reshape(-1, classes), labels.repeat(len(bank.specs)), reduction="none")
            .view(-1, n)
            .mean(dim=1)
        )
        right = logits.detach().argmax(dim=-1) == labels
        if record is not None:
            record.append(right.to(torch.uint8).cpu())
        hits = right.sum(dim=1).tolist()
        loss_values = losses.detach().tolist()
        stats: dict[str, float] = {}
        for key, h, loss in zip(bank.keys, hits, loss_values):
            stats["acc/" + key] = float(h)
            stats["loss/" + key] = loss * n
        stats["acc"] = sum(hits) / len(hits)  # the mean over probes, for the progress bar
        return losses.sum(), n, stats

    return step


# -- training ---------------------------------------------------------------------------------------


def train_probe_bank(
    bank: ProbeBank,
    source: BatchSource,
    train_loader: Iterable,
    test_loader: Iterable,
    config: ProbeConfig,
    device: torch.device,
    *,
    desc: str = "probes",
) -> list[ProbeResult]:
    """Train every probe of ``bank`` with the one training loop; the final test accuracy of each, and
    its hits image by image (``test_hits``, in the test loader's order) from the same final test pass."""
    config.validate()
    bank.to(device)
    optim = config.optim()
    optimizer = build_optimizer(bank.parameters(), optim)
    scheduler = build_scheduler(optimizer, optim, config.epochs, train_loader)
    step = bank_step(source)
    recorded: list[Tensor] = []  # the per-sample hits of the test pass under way
    last_hits: list[Tensor] = []  # those of the last finished one
    val_step = bank_step(source, recorded)
    histories: dict[str, list[dict[str, float | None]]] = {s.key: [] for s in bank.specs}

    def on_epoch_end(log: EpochLog) -> None:
        if log.val:
            last_hits[:], recorded[:] = recorded, []
        for spec in bank.specs:
            train_acc = log.train.get(f"acc/{spec.key}")
            val_acc = log.val.get(f"acc/{spec.key}") if log.val else None
            histories[spec.key].append({"epoch": log.epoch, "train_acc": train_acc, "val_acc": val_acc})
            if config.verbose:
                line = f"Epoch #{log.epoch} {spec.layer} rank {rank_label(spec.rank)}: train accuracy {train_acc:.4f}"
                if val_acc is not None:
                    line += f", val accuracy {val_acc:.4f}"
                print(line, flush=True)

    loop = LoopSettings(
        epochs=config.epochs, device=device, seed=config.seed, progress=config.progress, verbose=False, desc=desc
    )
    history = fit(
        bank,
        train_loader,
        optimizer,
        loop,
        val_loader=test_loader if (config.track_val or config.verbose) else None,
        scheduler=scheduler,
        step_fn=step,
        val_step_fn=val_step,
        on_epoch_end=on_epoch_end,
    )
    if history[-1].val is not None:
        final_val = history[-1].val
    else:
        final_val, last_hits = evaluate(bank, test_loader, device, step_fn=val_step), recorded
    hits = torch.cat(last_hits, dim=1).numpy()  # (probes, test samples)
    final_train = history[-1].train
    results = []
    for k, spec in enumerate(bank.specs):
        results.append(
            ProbeResult(
                layer=spec.layer,
                rank=spec.rank,
                val_acc=float(final_val[f"acc/{spec.key}"]),
                val_loss=float(final_val[f"loss/{spec.key}"]),
                train_acc=float(final_train[f"acc/{spec.key}"]),
                train_loss=float(final_train[f"loss/{spec.key}"]),
                in_features=spec.in_features,
                activation_shape=spec.shape,
                history=histories[spec.key],
                test_hits=hits[k],
            )
        )
    return results


def probe_specs(shapes: Mapping[str, tuple[int, ...]], layers: Sequence[str], ranks: Sequence[Rank]) -> list[ProbeSpec]:
    return [ProbeSpec(layer, rank, tuple(shapes[layer])) for layer in layers for rank in ranks]
