"""Linear probes on frozen representations, many (layer, rank) probes trained together.

A probe reads one layer's activation and predicts the class with one linear map (seed spec 1.6):

============== ========================================== =============================================
activation     features the linear map sees               the original
============== ========================================== =============================================
(N, C, H, W)   global average pool → C                     ConvProber: AdaptiveAvgPool2d(1), Linear(C, K)
(N, T, D)      the CLS token (token 0) → D                 TransformerProber: activation[:, 0], Linear(D, K)
(N, D)         the vector itself → D                       not implemented (crashed)
============== ========================================== =============================================

``token_pool="mean"`` averages the tokens instead of taking the CLS token (the original's unused
``cls_token=False``).

**Low rank** (seed spec 1.9, references.md section 3). The activation can be replaced by a rank-r
version before pooling, in one of two modes:

* ``"fixed"`` (default): a basis estimated once — the mean and the top principal directions of the
  rows (every position/token a row, channels or embedding dims as features) of the *training set's*
  un-augmented activations — applied identically to every batch. One eigendecomposition per layer
  serves every rank (the rank-r basis is the first r directions). Because the projection
  ``x ↦ μ + (x − μ)VVᵀ`` acts on every row alike and pooling averages (or selects) rows, pooling
  first and projecting the pooled vector gives exactly the same features, which is how it is
  computed;
* ``"per_batch"``: the original's behaviour, a centred truncated SVD of every mini-batch's activation
  (train and test batches alike), so the kept subspace depends on the batch. Parity only.

**Training several probes at once.** All requested (layer, rank) probes share one pass of the
frozen network per batch (its prefix up to the deepest layer, never the rest) and one optimizer over
their independent heads. The loss is the *sum* of the heads' cross-entropies; each head's gradient
is that of its own loss, and Adam's update is per parameter, so every head follows exactly the
trajectory it would follow alone with the same batches. Every head is initialised right after
``torch.manual_seed(seed)``, so a probe's result does not depend on which other probes were trained
beside it.

Where the data have no augmentation, the network runs once over the training and test sets: the
pooled features (and the statistics of the fixed basis) are kept and the probes are trained on them
(:func:`~.bank.probe_activations` does the same from arrays). With augmentation, or with per-batch low rank,
the network's prefix runs on every batch (:func:`~stitchkit.probing.model.probe_model`).

Defaults are the original's ``exec_probe.py``: Adam, lr 1e-3, weight decay 0, batch 64, 10 epochs,
LR ×0.1 after epoch e − 5. The original's milestone e − 5 decayed at construction for e = 5 and never
for e < 5; here it is used only when e > 5 (no decay otherwise), see :func:`default_milestones`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from ..activations.pooling import pool_features
from ..choices import DEFAULT_AUGMENTATION, TOKEN_POOLS  # torch-free home of the names (the CLI reads them)
from ..data.augmentation import check_augmentation, choice_of
from ..errors import StitchkitError
from ..ranks import LOW_RANK_MODES, Rank, low_rank_mode, rank_label, rank_used
from ..results import Matrix, Provenance, Table
from ..training.optim import OptimConfig
from ..uncertainty.bootstrap import BootstrapSpec, percentile_interval, resample_counts
from ..uncertainty.intervals import mean_samples
from ..utils.io import csv_text, ensure_writable_dir, write_csv_atomic, write_json_atomic
from ..utils.numbers import check_seed
from ..utils.run_options import RUN_OPTION_NAMES, RunOptions


def default_milestones(epochs: int) -> list[int]:
    """The original's LR decay epoch ``e − 5``, used only where it is meaningful (e > 5).

    The original passed ``[e − 5]`` to MultiStepLR unconditionally: for e = 5 the milestone 0 decayed
    the LR before the first epoch and for e < 5 it never decayed. Here e ≤ 5 trains at a constant LR.
    """
    return [epochs - 5] if epochs > 5 else []


@dataclass
class ProbeConfig(RunOptions):
    """How probes are trained. Defaults are the original's ``exec_probe.py`` (see the module docstring).

    Where they run is :class:`~stitchkit.utils.run_options.RunOptions` (``device``, ``workers``,
    ``prefetch``, ``data_root`` of model-level probing; ``progress`` and ``verbose``, off here): none of
    them changes a result, none is part of :meth:`key` or of the recorded config."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    #: LR ×``gamma`` after these epochs; None: :func:`default_milestones` (e − 5 when e > 5)
    milestones: list[int] | None = None
    gamma: float = 0.1
    #: the LR schedule (stitchkit.training.optim): "none" decays ×gamma at the milestones, as the original
    scheduler: str = "none"
    schedule_unit: str = "epoch"
    warmup_fraction: float = 0.0
    low_rank_mode: str = "fixed"
    token_pool: str = "cls"
    #: augmentation of the training images (:data:`~stitchkit.choices.AUGMENTATIONS`): "network" = as the
    #: probed network's checkpoint records (the dataset's default, as the original, when it records
    #: nothing); resolved by model-level probing (:func:`~.model.resolve_probe_config`), which alone uses it
    augment: str = DEFAULT_AUGMENTATION
    #: model-level probing trains on a fixed random subset of this many training images (drawn with
    #: ``seed``; None: all of them)
    train_subset: int | None = None
    #: batch size of the passes that extract features (no effect on the result)
    feature_batch_size: int = 256
    #: record the test accuracy after every epoch (the original's --verbose); costs a test pass per epoch
    track_val: bool = False
    verbose: bool = field(default=False, kw_only=True)  # RunOptions, quiet by default
    progress: bool = field(default=False, kw_only=True)

    def validate(self) -> ProbeConfig:
        if isinstance(self.low_rank_mode, str):
            self.low_rank_mode = low_rank_mode(self.low_rank_mode)  # one spelling (the earlier per-batch warns)
        if isinstance(self.augment, bool):  # the option's earlier form: on = the dataset's default
            self.augment = choice_of(self.augment)
        check_augmentation(self.augment, "probe augment")
        check_seed(self.seed, "probe seed")
        checks = [
            (
                isinstance(self.epochs, int) and self.epochs >= 1,
                f"probe epochs must be at least 1, got {self.epochs!r}",
            ),
            (
                isinstance(self.batch_size, int) and self.batch_size >= 1,
                f"probe batch size must be at least 1, got {self.batch_size!r}",
            ),
            (
                self.train_subset is None or (isinstance(self.train_subset, int) and self.train_subset >= 1),
                f"the probes' training subset must be a positive number of images, got {self.train_subset!r}",
            ),
            (self.lr > 0, f"probe learning rate must be positive, got {self.lr}"),
            (self.weight_decay >= 0, f"probe weight decay must be non-negative, got {self.weight_decay}"),
            (
                self.low_rank_mode in LOW_RANK_MODES,
                f"low-rank mode must be one of {', '.join(LOW_RANK_MODES)}, got {self.low_rank_mode!r}",
            ),
            (
                self.token_pool in TOKEN_POOLS,
                f"token pooling must be one of {', '.join(TOKEN_POOLS)}, got {self.token_pool!r}",
            ),
            (self.feature_batch_size >= 1, f"feature batch size must be at least 1, got {self.feature_batch_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise StitchkitError(message)
        if self.milestones is not None and any(int(m) < 1 for m in self.milestones):
            raise StitchkitError(f"LR decay epochs must be at least 1, got {self.milestones}")
        self.optim().validate()
        self.check_run_options()
        return self

    @property
    def resolved_milestones(self) -> list[int]:
        return list(self.milestones) if self.milestones is not None else default_milestones(self.epochs)

    def optim(self) -> OptimConfig:
        return OptimConfig(
            optimizer="adam",
            lr=self.lr,
            weight_decay=self.weight_decay,
            milestones=self.resolved_milestones,
            gamma=self.gamma,
            scheduler=self.scheduler,
            schedule_unit=self.schedule_unit,
            warmup_fraction=self.warmup_fraction,
        )

    def recorded(self) -> dict[str, Any]:
        """The fields a result records: the probes' options (not where they ran: no run option but
        ``verbose`` and ``progress``, last, where they always were)."""
        out = {name: value for name, value in asdict(self).items() if name not in RUN_OPTION_NAMES}
        out.update(verbose=self.verbose, progress=self.progress)
        return out

    def key(self) -> str:
        """What changes a probe's result (for caches of results)."""
        # the augmentation as it acts, spelled as before the choice existed (True/False) so that cached
        # results stay valid; an unresolved "network" matches nothing cached
        augment = {"dataset": True, "none": False}.get(self.augment, self.augment)
        parts = [
            self.epochs,
            self.batch_size,
            self.lr,
            self.weight_decay,
            self.seed,
            self.resolved_milestones,
            self.gamma,
            self.low_rank_mode,
            self.token_pool,
            augment,
        ]
        if self.train_subset is not None:
            parts.append(f"train_subset={self.train_subset}")
        defaults = ProbeConfig()
        parts += [
            f"{name}={getattr(self, name)}"
            for name in ("scheduler", "schedule_unit", "warmup_fraction")
            if getattr(self, name) != getattr(defaults, name)
        ]  # only when set: the keys of cached results stay
        return "|".join(map(str, parts))


# -- features ---------------------------------------------------------------------------------------


def pool_activation(x: Tensor, token_pool: str = "cls") -> Tensor:
    """The probe's feature vector of each sample: conv → global average pool, tokens → CLS token (or
    the mean token), vectors → themselves (:func:`~stitchkit.activations.pooling.pool_features`)."""
    if x.dim() not in (2, 3, 4):
        raise StitchkitError(
            f"a probe reads activations of shape (N, C, H, W), (N, T, D) or (N, D), got {tuple(x.shape)}"
        )
    return pool_features(x, "cls" if token_pool == "cls" else "avg")


# -- results ----------------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    """One probe's outcome: the final test ("val") accuracy after the last epoch, as the original reports."""

    layer: str
    rank: Rank
    val_acc: float
    val_loss: float
    train_acc: float
    train_loss: float
    in_features: int
    activation_shape: tuple[int, ...]
    #: per-epoch (train_acc, val_acc or None)
    history: list[dict[str, float | None]] = field(default_factory=list)
    #: per test sample (test order): 1 where the final probe classified it right (``val_acc`` is their mean)
    test_hits: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.layer}@{rank_label(self.rank)}"

    @property
    def rank_used(self) -> int | None:
        """The rank the probed representation has: ``rank`` capped at the layer's feature count."""
        return rank_used(self.rank, self.activation_shape)

    def to_dict(self) -> dict[str, Any]:
        out = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "test_hits"
        }  # the hits go to per_sample(), not JSON
        out["history"] = [dict(h) for h in self.history]
        out["activation_shape"] = list(self.activation_shape)
        out["rank_used"] = self.rank_used
        return out


@dataclass(repr=False)
class ProbeReport:
    """All probes of one network, with the configuration and provenance."""

    results: list[ProbeResult]
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One line of what it holds (the records: ``report.results``; the numbers: :meth:`matrix`, :meth:`table`)."""
        layers = list(dict.fromkeys(r.layer for r in self.results))
        return (
            f"ProbeReport: {len(self.results)} probes over {len(layers)} layers; .matrix() (layers × ranks), .table()"
        )

    def accuracy(self, layer: str, rank: Rank = None) -> float:
        for r in self.results:
            if r.layer == layer and r.rank == rank:
                return r.val_acc
        raise StitchkitError(f"no probe of layer {layer!r} at rank {rank_label(rank)} in this report")

    def layers(self) -> list[str]:
        return list(dict.fromkeys(r.layer for r in self.results))

    def to_dict(self) -> dict[str, Any]:
        return {"info": self.info, "config": self.config, "results": [r.to_dict() for r in self.results]}

    #: the columns of ``probes.csv``
    CSV_COLUMNS = (
        "layer",
        "rank",
        "val_acc",
        "val_loss",
        "train_acc",
        "train_loss",
        "in_features",
        "activation_shape",
        "rank_used",
    )

    def provenance(self, what: str) -> Provenance:
        options = {
            k: self.info.get(k)
            for k in ("layers", "ranks", "num_classes", "train_samples", "test_samples", "augmented", "augmentation")
        }
        return Provenance(
            what,
            {"model": self.info.get("model_fingerprint")},
            {**options, "config": self.config},
            {"accuracy": "the final test accuracy after the last epoch (the original's report)"},
        )

    def matrix(self, metric: str = "val_acc", bootstrap: BootstrapSpec | None = None) -> Matrix:
        """Layers (rows) × ranks (columns, ``full`` first) of ``val_acc`` (default), ``val_loss``,
        ``train_acc`` or ``train_loss``; NaN where a layer was not probed at a rank. With an enabled
        ``bootstrap``, the test accuracy carries the bounds of :meth:`accuracy_intervals`."""
        if metric not in ("val_acc", "val_loss", "train_acc", "train_loss"):
            raise StitchkitError(f"a probe matrix shows val_acc, val_loss, train_acc or train_loss, not {metric!r}")
        ranks = list(dict.fromkeys(r.rank for r in self.results))
        cells = {(r.layer, r.rank): getattr(r, metric) for r in self.results}
        values = [[cells.get((layer, rank)) for rank in ranks] for layer in self.layers()]
        accuracy = metric.endswith("acc")
        bounds: dict[str, Any] = {}
        if bootstrap is not None and bootstrap.enabled and metric == "val_acc":
            found = self.accuracy_intervals(bootstrap)
            bounds = {
                side: [
                    [found[(layer, rank)][k] if (layer, rank) in found else math.nan for rank in ranks]
                    for layer in self.layers()
                ]
                for k, side in enumerate(("lower", "upper"))
            }
            bounds["interval"] = bootstrap.record()
        return Matrix(
            self.layers(),
            [rank_label(r) for r in ranks],
            values,
            kind="accuracy" if accuracy else "distance",
            range=(0.0, 1.0) if accuracy else (0.0, None),
            row_label="layer",
            col_label="rank",
            name=f"probe {metric}",
            provenance=self.provenance(f"linear probes: {metric}"),
            **bounds,
        )

    def per_sample(self) -> dict[str, np.ndarray]:
        """Each probe's hits on the test images, ``hits|<layer>|<rank label>`` (uint8, 1 = right), and the
        test images' indices in their set (``images``): a study probes unit's ``per_sample`` artifact."""
        kept = [r for r in self.results if r.test_hits is not None]
        if not kept:
            raise StitchkitError(
                "these probe results keep no per-image hits (they were made before stitchkit kept them); probe again"
            )
        out = {f"hits|{r.layer}|{rank_label(r.rank)}": np.asarray(r.test_hits, dtype=np.uint8) for r in kept}
        images = self.info.get("test_images")
        out["images"] = np.asarray(images if images is not None else np.arange(kept[0].test_hits.size), dtype=np.int64)
        return out

    def accuracy_intervals(self, bootstrap: BootstrapSpec) -> dict[tuple[str, Rank], tuple[float, float]]:
        """``{(layer, rank): (lower, upper)}``: the percentile interval of each probe's test accuracy from
        resampling the test images (the same resamples for every probe, so differences have intervals too)."""
        kept = [r for r in self.results if r.test_hits is not None]
        if not kept:
            raise StitchkitError("these probe results keep no per-image hits to resample; probe again")
        hits = np.stack([np.asarray(r.test_hits, dtype=np.float64) for r in kept])  # (probes, images)
        samples = mean_samples(hits, resample_counts(hits.shape[1], bootstrap.resamples, bootstrap.seed))  # (B, probes)
        lower, upper = percentile_interval(samples, bootstrap.level)
        return {(r.layer, r.rank): (float(lo), float(hi)) for r, lo, hi in zip(kept, lower, upper)}

    def table(self) -> Table:
        """One row per probe (every field of :class:`ProbeResult`)."""
        return Table([r.to_dict() for r in self.results], name="probes", provenance=self.provenance("linear probes"))

    def csv_rows(self) -> list[dict[str, Any]]:
        """The rows of ``probes.csv``: ranks as ``full`` or a number, numbers to 6 decimals, shapes as ``CxHxW``."""
        return [
            {
                "layer": r.layer,
                "rank": rank_label(r.rank),
                **{k: f"{getattr(r, k):.6f}" for k in ("val_acc", "val_loss", "train_acc", "train_loss")},
                "in_features": r.in_features,
                "activation_shape": "x".join(map(str, r.activation_shape)),
                "rank_used": rank_label(r.rank_used),
            }
            for r in self.results
        ]

    def to_csv(self) -> str:
        return csv_text(self.csv_rows(), self.CSV_COLUMNS)

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """``probes.json`` and ``probes.csv`` in ``out_dir``, each written whole or not at all."""
        folder = ensure_writable_dir(out_dir)
        paths = {"json": folder / "probes.json", "csv": folder / "probes.csv"}
        write_json_atomic(paths["json"], self.to_dict())
        write_csv_atomic(paths["csv"], self.csv_rows(), self.CSV_COLUMNS)
        return paths


def config_record(config: ProbeConfig) -> dict[str, Any]:
    """What a report records of ``config`` (:meth:`ProbeConfig.recorded`, the optimizer, the conventions)."""
    out = config.recorded()
    out["milestones"] = config.resolved_milestones
    out["optimizer"] = "adam"
    out["conventions"] = {
        "accuracy": "test-split accuracy after the last epoch (the original's val accuracy)",
        "pooling": "conv: global average pool; tokens: "
        + ("CLS token" if config.token_pool == "cls" else "mean token")
        + "; vectors: as they are",
        "low_rank": "fixed basis estimated on the un-augmented training set"
        if config.low_rank_mode == "fixed"
        else "centred truncated SVD of every mini-batch (the original)",
        "lr_decay": "×gamma after each milestone epoch; default e−5 only when e > 5",
    }
    return out
