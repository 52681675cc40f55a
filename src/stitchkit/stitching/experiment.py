"""Stitching experiments on models: one layer pair (:func:`stitch_pair`) or a layer grid in one process
(:func:`stitch_grid`), with the original's run files on disk (spec 1.3) and typed result records.

One pair, step by step (the original's ``exec_stitch.py``, minus its bugs and waste):

1. seed; build the :class:`~.stitcher.Stitcher` (front prefix → stitching layer → end suffix, donors frozen
   in eval mode);
2. the fit set: K (``fit_samples``, default 100) training images **without augmentation**, a seeded
   random subset (:func:`~stitchkit.activations.sample_subset`), streamed in batches; with a fixed
   low-rank mode the basis of ``--front-stitch-rank`` is estimated on it;
3. ``init="pinv"``: direct matching on the fit set (:func:`~.matching.fit_direct_match`);
4. ``epochs > 0``: task loss matching on the training split with the dataset's augmentation, validated
   on the test split after every epoch. ``epochs == 0`` builds no training set or loader at all, so only
   the K fit images of the training split are ever read;
5. one pass over the test split: accuracy, loss, residual of the installed map (pooled and the
   original's per-batch mean) and, once per session, the donors' own accuracies;
6. the in-sample residual of the installed map on the fit set, sparsity, wall times;
7. the run folder ``<save_dir>/<run name>/``, written to a hidden temporary folder and renamed into
   place, so it is either complete or absent.

A grid extracts each network's activations at every needed layer **once** for the fit set and once for
the test set (:func:`~stitchkit.activations.extract_activations`; memory-mapped in a cache folder when
they are large) and reuses them for every pair: direct matching reads the cached activations, and the
evaluation runs only the stitching layer and the end suffix on the cached front activation. Task loss
matching still trains every pair on freshly augmented images, sharing the datasets and loaders.

Run names are deterministic: ``<front layer>__<end layer>__<type>__<init>_e<epochs>__<hash>``, the hash
covering both models' content fingerprints, the dataset and every option that changes the numbers. A
finished run is never overwritten silently: it is skipped (and said so) unless ``overwrite``. So an
interrupted grid, run again, only computes the missing pairs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from .. import __version__
from ..activations.extract import ActivationCache, Activations, extract_activations, model_fingerprint, sample_subset
from ..errors import StitchkitError, unknown_name
from ..models.layers import layered
from ..training.optim import OptimConfig
from ..utils.device import resolve_device
from ..utils.io import ensure_writable_dir, json_safe, torch_save_atomic, write_csv_atomic, write_json_atomic, write_text_atomic
from ..utils.seed import set_seed
from .layers import INITS, UPSAMPLE_MODES, list_stitching_layers
from .matching import (
    FrontActivationBatches,
    PairSource,
    cached_pairs,
    evaluate_stitcher,
    fit_direct_match,
    fit_statistics,
    image_pairs,
    sparsity,
    task_loss_match,
)
from .stitcher import LOW_RANK_MODES, Stitcher, check_low_rank_mode, check_rank

RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "final_model.pt"
BASIS_FILE = "low_rank_basis.pt"

#: Conventions recorded with every result (references.md section 3).
CONVENTIONS = {
    "residual": "‖T(f(x)) − g(x)‖²_F / ‖g(x)‖²_F with the uncentred target norm; T(f(x)) is the stitching layer's "
    "output, g(x) the end layer's own output; 'residual' pools every test image (the sound default), "
    "'residual_batch_mean' is the original's mean of per-batch ratios at the run's batch size",
    "fit_residual": "the same ratio, in-sample on the fit images, of the map installed at the end of the run "
    "(computed from its weights; the original reported a second, differently cut-off pinv)",
    "dm_fit_residual": "in-sample residual of the direct-matching solution on its own (possibly low-rank) source, "
    "before any training",
    "direct_matching": "minimum-norm least squares [X, 1]·Θ = Y, streamed float64 statistics; rows are spatial "
    "positions (conv) or tokens including CLS; source = the stitching layer's transform input (after resizing)",
    "low_rank_source": "both --front-stitch-rank and --front-pinv-rank truncate the front activation before the "
    "stitching layer (the original truncated the resized source for the pinv fit)",
    "donors": "frozen (requires_grad False) and always in eval mode (BatchNorm statistics never change)",
    "accuracy": "top-1 on the test split (first test_samples images when set), fraction",
    "positive_class": "n/a",
}


# --------------------------------------------------------------------------------------------------
# settings


@dataclass
class StitchSettings:
    """Everything that shapes a stitch. Defaults are the original's ``exec_stitch.py``, except
    ``low_rank_mode`` (``"fixed"``; the original's behaviour is ``"per-batch"``) and ``device``.

    ``fit_samples`` is K of direct matching (``-pinv-samples``); ``None`` uses the whole training split.
    ``test_samples`` evaluates on the first N test images (quick runs; None = all, like the original);
    ``train_samples`` trains on a fixed seeded random subset of the training split (None = all).
    ``memory_limit_gb`` bounds the activations a grid keeps in RAM; larger sets are memory-mapped under
    ``cache_dir`` (default ``<save_dir>/.activation_cache``, removed when the grid finishes).
    """

    stitching_type: str = "auto"
    init: str = "rand"
    epochs: int = 30
    batch_size: int = 256
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    fit_samples: int | None = 100
    test_samples: int | None = None
    train_samples: int | None = None
    l1: float = 0.0
    grad_clip: float | None = None
    upsample_mode: str = "bilinear"
    c2t_cls: str | None = None
    t2c_cls: str | None = None
    front_stitch_rank: int | None = None
    front_pinv_rank: int | None = None
    low_rank_mode: str = "fixed"
    rcond: float | None = None
    dataset: str | None = None
    data_root: str | None = None
    download: bool = True
    device: str = "auto"
    workers: int = 1
    prefetch: int = 1
    save_weights: bool = True
    overwrite: bool = False
    cache_dir: str | None = None
    memory_limit_gb: float = 1.0
    progress: bool = True
    verbose: bool = True

    def validate(self) -> "StitchSettings":
        if self.stitching_type not in list_stitching_layers():
            raise unknown_name("stitching type", self.stitching_type, list_stitching_layers())
        if self.init not in INITS:
            raise unknown_name("init", self.init, INITS)
        if self.upsample_mode not in UPSAMPLE_MODES:
            raise unknown_name("upsample mode", self.upsample_mode, UPSAMPLE_MODES)
        check_low_rank_mode(self.low_rank_mode)
        check_rank("--front-stitch-rank", self.front_stitch_rank)
        check_rank("--front-pinv-rank", self.front_pinv_rank)
        self.optim.validate()
        checks = [
            (self.epochs >= 0, f"epochs (-e) must be 0 (direct matching only) or more, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size (-b) must be at least 1, got {self.batch_size}"),
            (self.fit_samples is None or self.fit_samples >= 1, f"-pinv-samples must be at least 1, got {self.fit_samples}"),
            (self.test_samples is None or self.test_samples >= 1, f"--test-samples must be at least 1, got {self.test_samples}"),
            (self.train_samples is None or self.train_samples >= 1, f"--train-subset must be at least 1, got {self.train_samples}"),
            (self.l1 >= 0, f"L1 coefficient (-l1) must be non-negative, got {self.l1}"),
            (self.grad_clip is None or self.grad_clip > 0, f"gradient clipping threshold must be positive, got {self.grad_clip}"),
            (self.workers >= 0, f"loader workers must be non-negative, got {self.workers}"),
            (self.prefetch >= 1, f"prefetch factor must be at least 1, got {self.prefetch}"),
            (self.memory_limit_gb >= 0, f"memory limit must be non-negative, got {self.memory_limit_gb}"),
        ]
        for ok, message in checks:
            if not ok:
                raise StitchkitError(message)
        if self.front_pinv_rank is not None and self.init != "pinv":
            raise StitchkitError("--front-pinv-rank only applies to direct matching; add -i pinv")
        return self

    def result_options(self) -> dict[str, Any]:
        """The options that change the numbers (they name the run); not device, loaders or paths."""
        return {
            "stitching_type": self.stitching_type,
            "init": self.init,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optim": asdict(self.optim) if self.epochs > 0 else None,
            "seed": self.seed,
            "fit_samples": self.fit_samples,
            "test_samples": self.test_samples,
            "train_samples": self.train_samples if self.epochs > 0 else None,
            "l1": self.l1 if self.epochs > 0 else 0.0,
            "grad_clip": self.grad_clip if self.epochs > 0 else None,
            "upsample_mode": self.upsample_mode,
            "c2t_cls": self.c2t_cls,
            "t2c_cls": self.t2c_cls,
            "front_stitch_rank": self.front_stitch_rank,
            "front_pinv_rank": self.front_pinv_rank,
            "low_rank_mode": self.low_rank_mode if (self.front_stitch_rank or self.front_pinv_rank) else None,
            "rcond": self.rcond,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StitchSettings":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("optim"), dict):
            values["optim"] = OptimConfig(**values["optim"])
        return cls(**values)


# --------------------------------------------------------------------------------------------------
# donors


@dataclass
class Donor:
    """A donor network with its identity: where it came from and a content hash of its weights."""

    model: nn.Module
    path: str | None
    model_type: str
    fingerprint: str
    dataset: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "abs_path": str(Path(self.path).absolute()) if self.path else None,
            "model_type": self.model_type,
            "fingerprint": self.fingerprint,
            "model_spec": getattr(self.model, "stitchkit_spec", None),
        }


AUTO_TYPES = (None, "", "-", "auto")


def load_donor(source: str | os.PathLike | nn.Module | Donor, model_type: str | None = None, *, dataset: str | None = None,
               model_options: dict[str, Any] | None = None) -> Donor:
    """A :class:`Donor` from a checkpoint path (a self-describing stitchkit checkpoint needs no type;
    ``model_type`` ``None``/``"-"``/``"auto"`` means "read it from the checkpoint"; the original's plain
    state_dicts need the architecture name and take their shapes from ``dataset``) or from a model."""
    if isinstance(source, Donor):
        return source
    if isinstance(source, nn.Module):
        spec = getattr(source, "stitchkit_spec", None)
        name = spec["name"] if isinstance(spec, dict) else type(source).__name__
        return Donor(source, None, name, model_fingerprint(source))
    from ..models.checkpoint import load_checkpoint, load_model

    path = str(source)
    wanted = None if model_type in AUTO_TYPES else model_type
    if wanted is not None:
        ckpt = load_checkpoint(path)
        described = (ckpt.model_spec or {}).get("name")
        if described is not None and described != wanted:
            raise StitchkitError(
                f"checkpoint {path!r} holds a {described}, not a {wanted}; give its type as {described!r} or '-' "
                "(a stitchkit checkpoint describes itself)"
            )
    model, ckpt = load_model(path, wanted, dataset=dataset, **(model_options or {}))
    name = model.stitchkit_spec["name"] if hasattr(model, "stitchkit_spec") else (wanted or type(model).__name__)
    return Donor(model, path, name, model_fingerprint(model), ckpt.dataset)


def resolve_layers(model: nn.Module, layers: str | Sequence[str]) -> list[str]:
    """``"all"``, a comma-separated string or a list of layer names → validated names in forward order
    of the request (``all``: the network's order)."""
    lm = layered(model)
    if isinstance(layers, str):
        if layers.strip() == "all":
            return list(lm.layers)
        layers = [part.strip() for part in layers.split(",") if part.strip()]
    names = [lm.check_layer(name) for name in layers]
    if not names:
        raise StitchkitError(f"no layers given for {lm.model_name}; valid layers: {', '.join(lm.layers)}")
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------------------------------
# results


@dataclass
class StitchResult:
    """One stitched pair: what was measured, on what, with which options and conventions.

    Metrics: ``accuracy`` and ``loss`` of the stitched network on the test split; ``residual`` (pooled) and
    ``residual_batch_mean`` (the original's "Normalized representation difference") of the installed
    map on the test split; ``fit_residual`` of the installed map in-sample on the fit images (the
    original's "Normalized PINV difference", here always of the installed map); ``dm_fit_residual`` of
    the direct-matching solution before training (``init == "pinv"``); the donors' own accuracies;
    ``sparsity`` of the transform's weight, bias and both; wall ``seconds``.
    """

    front_layer: str
    end_layer: str
    stitching_type: str
    init: str
    epochs: int
    accuracy: float
    loss: float
    residual: float
    residual_batch_mean: float
    fit_residual: float
    dm_fit_residual: float | None
    dm_rank: int | None
    n_fit: int
    n_fit_rows: int | None
    n_test: int
    front_accuracy: float | None
    end_accuracy: float | None
    sparsity: dict[str, dict[str, float]]
    train_history: list[dict[str, float]]
    seconds: dict[str, float]
    front: dict[str, Any]
    end: dict[str, Any]
    dataset: str
    options: dict[str, Any]
    config_key: str
    run_name: str
    conventions: dict[str, str] = field(default_factory=lambda: dict(CONVENTIONS))
    stitchkit_version: str = __version__
    run_dir: str | None = None
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; NaN and infinities become ``None``."""
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StitchResult":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("accuracy", "loss", "residual", "residual_batch_mean", "fit_residual"):
            if values.get(key) is None:
                values[key] = math.nan
        return cls(**values)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "StitchResult":
        path = Path(run_dir) / RESULT_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StitchkitError(f"cannot read stitch result {str(path)!r}: {exc}") from None
        result = cls.from_dict(data)
        result.run_dir = str(run_dir)
        return result


def _hash(obj: Any, n: int = 10) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def config_key(front: Donor, end: Donor, dataset: str, settings: StitchSettings) -> str:
    """Identifies an experiment up to the layer pair: both models by content, the data and the options."""
    return _hash({"front": front.fingerprint, "end": end.fingerprint, "dataset": dataset, "options": settings.result_options()})


def run_name(front_layer: str, end_layer: str, front: Donor, end: Donor, dataset: str, settings: StitchSettings) -> str:
    """The deterministic folder name of one pair's run."""
    digest = _hash({"key": config_key(front, end, dataset, settings), "front_layer": front_layer, "end_layer": end_layer})
    safe = lambda s: "".join(c if c.isalnum() or c in "._-" else "-" for c in s)  # noqa: E731
    return f"{safe(front_layer)}__{safe(end_layer)}__{settings.stitching_type}__{settings.init}_e{settings.epochs}__{digest}"


def summary_text(result: StitchResult, command: str) -> str:
    """``summary.txt`` in the original's exact line format (trailing spaces included), with the values
    of the installed map and the sparsity of weight and bias together (the original's typo fixed)."""
    front_path = result.front.get("path") or f"<memory:{result.front['fingerprint']}>"
    end_path = result.end.get("path") or f"<memory:{result.end['fingerprint']}>"
    s = result.sparsity["all"]
    return (
        f"Front model: {front_path} \n"
        f"End model: {end_path} \n"
        f"Front layer: {result.front_layer} \n"
        f"End layer: {result.end_layer} \n"
        f"Clean accuracy: {result.accuracy:.4f} \n"
        f"Normalized PINV difference: {result.fit_residual:.4f}\n"
        f"Normalized representation difference: {result.residual_batch_mean:.4f}\n"
        "\n"
        f"Command: {command}\n"
        "\n"
        "Sparsity\n"
        f"0: \t\t{s['0']}\n"
        f"1e-5: \t{s['1e-5']}\n"
        f"1e-4: \t{s['1e-4']}\n"
        f"1e-3: \t{s['1e-3']}\n"
        f"1e-2: \t{s['1e-2']}\n"
        f"1e-1: \t{s['1e-1']}\n"
    )


def original_config(front: Donor, end: Donor, front_layer: str, end_layer: str, dataset: str, settings: StitchSettings,
                    save_dir: str) -> dict[str, Any]:
    """``config.txt``: the arguments under the original's names (``exec_eval_stitcher_ood.py`` read them),
    then stitchkit's additions."""
    s = settings
    return {
        "front_model_path": front.path, "end_model_path": end.path, "front_model_type": front.model_type, "end_model_type": end.model_type,
        "front_layer": front_layer, "end_layer": end_layer, "stitching_type": s.stitching_type, "gpu": s.device, "dataset": dataset,
        "optimizer": s.optim.optimizer, "batch_size": s.batch_size, "n_epochs": s.epochs, "learning_rate": s.optim.lr,
        "weight_decay": s.optim.weight_decay, "seed": s.seed, "reduce_lr_epochs": list(s.optim.milestones), "dataset_root": s.data_root,
        "n_workers": s.workers, "prefetch_factor": s.prefetch, "save_dir": save_dir, "no_save": not s.save_weights, "mod_only_stitch": True,
        "init": s.init, "n_pinv_init_samples": s.fit_samples, "l1_coef": s.l1, "c2t_cls_token": s.c2t_cls, "t2c_cls_token": s.t2c_cls,
        "upsample_mode": s.upsample_mode, "front_stitch_rank": s.front_stitch_rank, "front_pinv_rank": s.front_pinv_rank,
        # stitchkit's additions
        "lr_scheduler": s.optim.scheduler, "grad_clip": s.grad_clip, "low_rank_mode": s.low_rank_mode, "test_samples": s.test_samples,
        "train_subset": s.train_samples,
    }


def _publish(final_dir: Path, write: Callable[[Path], None], overwrite: bool) -> None:
    """Write a run into a hidden temporary folder beside ``final_dir`` and rename it into place, so a
    run folder is complete or absent (an interrupted run leaves only a hidden ``.*.partial`` folder)."""
    parent = ensure_writable_dir(final_dir.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".partial", dir=parent))
    try:
        write(tmp)
        if final_dir.exists():
            if not overwrite:
                raise StitchkitError(f"{str(final_dir)!r} appeared while this run was computed; not overwriting it")
            trash = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".old", dir=parent))
            os.replace(final_dir, trash / final_dir.name)
            os.replace(tmp, final_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_finished(run_dir: Path) -> bool:
    return (run_dir / RESULT_FILE).is_file()


# --------------------------------------------------------------------------------------------------
# a session: donors, data, device, caches; runs pairs


class _Session:
    def __init__(self, front: Donor, end: Donor, settings: StitchSettings, *, log: Callable[[str], None]):
        from .. import data as data_registry

        self.s = settings
        self.front, self.end = front, end
        self.log = log
        self.info = data_registry.dataset_info(_resolve_dataset(settings.dataset, front, end))
        self.input_shape = tuple(self.info.shape)
        for donor, role in ((front, "front"), (end, "end")):
            spec = getattr(donor.model, "stitchkit_spec", None) or {}
            channels = spec.get("in_channels")
            if channels is not None and channels != self.input_shape[0]:
                raise StitchkitError(
                    f"the {role} model takes {channels}-channel inputs but dataset {self.info.name} has {self.input_shape[0]} channels"
                )
        end_classes = (getattr(end.model, "stitchkit_spec", None) or {}).get("num_classes")
        if end_classes is not None and end_classes != self.info.num_classes:
            raise StitchkitError(f"the end model has {end_classes} classes but dataset {self.info.name} has {self.info.num_classes}")
        self.device = resolve_device(settings.device)
        for model in (front.model, end.model):
            model.requires_grad_(False)
            model.eval()
            model.to(self.device)
        s = settings
        root = s.data_root
        self._registry = data_registry
        # Only the K fit images of the training split are ever read unless we train.
        train_plain = data_registry.get_dataset(self.info.name, "train", root=root, augment=False, download=s.download)
        self.fit_set = sample_subset(train_plain, s.fit_samples, s.seed)
        self.n_fit = len(self.fit_set)
        test_full = data_registry.get_dataset(self.info.name, "test", root=root, download=s.download)
        self.test_set = sample_subset(test_full, s.test_samples, None)
        self.n_test = len(self.test_set)
        self.sample_keys = {
            "fit": f"{self.info.name}|{root}|train|plain|K={s.fit_samples}|seed={s.seed}",
            "test": f"{self.info.name}|{root}|test|plain|n={s.test_samples}",
        }
        self._fit_loader = self._test_loader = self._train_loader = None
        self.cache: dict[str, dict[int, Activations]] | None = None
        self.cache_root: Path | None = None
        self.remove_cache = False
        self.donor_accuracy: tuple[float | None, float | None] | None = None
        self.extraction_seconds = 0.0
        self.key = config_key(front, end, self.info.name, settings)

    # --- loaders -----------------------------------------------------------------------------------
    def _loader(self, dataset, shuffle: bool, sampler=None):
        from ..training.base import make_loader

        return make_loader(dataset, self.s.batch_size, shuffle=shuffle, workers=self.s.workers, prefetch=self.s.prefetch,
                           device=self.device, sampler=sampler)

    @property
    def fit_loader(self):
        if self._fit_loader is None:
            self._fit_loader = self._loader(self.fit_set, False)
        return self._fit_loader

    @property
    def test_loader(self):
        if self._test_loader is None:
            self._test_loader = self._loader(self.test_set, False)
        return self._test_loader

    @property
    def train_loader(self):
        """The augmented training split, built on first use (never with ``epochs == 0``)."""
        if self._train_loader is None:
            train_set = self._registry.get_dataset(self.info.name, "train", root=self.s.data_root, augment=True, download=self.s.download)
            train_set = sample_subset(train_set, self.s.train_samples, self.s.seed)
            sampler = self._registry.train_sampler_for(self.info.name, train_set)
            self._train_loader = self._loader(train_set, True, sampler)
        return self._train_loader

    # --- activation sources ------------------------------------------------------------------------
    def fit_source(self, stitcher: Stitcher) -> PairSource:
        if self.cache is not None:
            return self._cached(stitcher, "fit")
        return image_pairs(stitcher, self.fit_loader, self.device)

    def test_source(self, stitcher: Stitcher) -> PairSource:
        if self.cache is not None:
            return self._cached(stitcher, "test")
        return image_pairs(stitcher, self.test_loader, self.device)

    def _cached(self, stitcher: Stitcher, which: str) -> PairSource:
        acts = self.cache[which]
        return cached_pairs(acts[id(self.front.model)], stitcher.front_layer, acts[id(self.end.model)], stitcher.end_layer,
                            self.s.batch_size, self.device)

    def val_data(self, stitcher: Stitcher) -> tuple[Iterable, bool]:
        if self.cache is not None:
            return FrontActivationBatches(self._cached(stitcher, "test")), True
        return self.test_loader, False

    def prepare_cache(self, front_layers: Sequence[str], end_layers: Sequence[str]) -> None:
        """Extract every needed layer of each network once, for the fit set and for the test set."""
        started = time.perf_counter()
        wanted: dict[int, tuple[nn.Module, list[str]]] = {}
        for model, layers in ((self.front.model, front_layers), (self.end.model, end_layers)):
            entry = wanted.setdefault(id(model), (model, []))
            entry[1].extend(layer for layer in layers if layer not in entry[1])
        for _, (model, layers) in wanted.items():
            order = layered(model).layers
            layers.sort(key=order.index)
        per_image = 0
        for model, layers in wanted.values():
            shapes = layered(model).shapes(self.input_shape, layers)
            per_image += sum(math.prod(shape) for shape in shapes.values()) * 4
        total = per_image * (self.n_fit + self.n_test)
        on_disk = total > self.s.memory_limit_gb * 2**30
        store: ActivationCache | None = None
        if on_disk:
            if self.s.cache_dir is None:
                raise StitchkitError("internal: a disk cache needs a folder")  # set by stitch_grid
            self.cache_root = Path(self.s.cache_dir)
            store = ActivationCache(ensure_writable_dir(self.cache_root))
            self.log(f"activations: {total / 2**30:.2f} GiB, memory-mapped under {self.cache_root}")
        self.cache = {"fit": {}, "test": {}}
        for key, (model, layers) in wanted.items():
            for which, data in (("fit", self.fit_set), ("test", self.test_set)):
                kwargs = dict(device=self.device, batch_size=self.s.batch_size, workers=self.s.workers, progress=self.s.progress,
                              desc=f"activations {which}")
                if store is not None:
                    acts = store.get(model, layers, data, self.sample_keys[which], **kwargs)
                else:
                    acts = extract_activations(model, layers, data, **kwargs)
                self.cache[which][key] = acts
        self.extraction_seconds = time.perf_counter() - started

    def close(self) -> None:
        self.cache = None
        if self.remove_cache and self.cache_root is not None:
            shutil.rmtree(self.cache_root, ignore_errors=True)

    # --- one pair ----------------------------------------------------------------------------------
    def stitcher(self, front_layer: str, end_layer: str) -> Stitcher:
        s = self.s
        set_seed(s.seed)  # the random init and the training of every pair are independent of the pair order
        stitcher = Stitcher(
            self.front.model, self.end.model, front_layer, end_layer, s.stitching_type, input_shape=self.input_shape, init=s.init,
            upsample_mode=s.upsample_mode, c2t_cls=s.c2t_cls, t2c_cls=s.t2c_cls, front_rank=s.front_stitch_rank,
            low_rank_mode=s.low_rank_mode,
        )
        return stitcher.to(self.device)

    def run_pair(self, front_layer: str, end_layer: str, name: str) -> tuple[StitchResult, Stitcher]:
        s = self.s
        started = time.perf_counter()
        stitcher = self.stitcher(front_layer, end_layer)
        fit_pairs = self.fit_source(stitcher)
        if stitcher.reduce.needs_fit:
            stitcher.fit_low_rank(front for front, _, _ in fit_pairs())
        dm = None
        if s.init == "pinv":
            dm = fit_direct_match(stitcher, fit_pairs, rank=s.front_pinv_rank, low_rank_mode=s.low_rank_mode, rcond=s.rcond)
        t_fit = time.perf_counter()
        history: list[dict[str, float]] = []
        if s.epochs > 0:
            val, from_acts = self.val_data(stitcher)
            logs = task_loss_match(
                stitcher, self.train_loader, epochs=s.epochs, device=self.device, optim=s.optim, l1=s.l1, grad_clip=s.grad_clip,
                seed=s.seed, val_data=val, val_from_activations=from_acts, progress=s.progress, verbose=s.verbose,
                desc=f"{front_layer}->{end_layer}",
            )
            history = [log.row() for log in logs]
        t_train = time.perf_counter()
        fit_residual = self._fit_residual(stitcher, dm, fit_pairs)
        donors = self.donor_accuracy is None
        evaluation = evaluate_stitcher(stitcher, self.test_source(stitcher), donors=donors)
        if donors:
            self.donor_accuracy = (evaluation.front_accuracy, evaluation.end_accuracy)
        t_eval = time.perf_counter()
        lf, le = layered(self.front.model), layered(self.end.model)
        result = StitchResult(
            front_layer=front_layer, end_layer=end_layer, stitching_type=stitcher.kind, init=s.init, epochs=s.epochs,
            accuracy=evaluation.accuracy, loss=evaluation.loss, residual=evaluation.residual,
            residual_batch_mean=evaluation.residual_batch_mean, fit_residual=fit_residual,
            dm_fit_residual=dm.residual if dm is not None else None, dm_rank=dm.rank if dm is not None else None,
            n_fit=self.n_fit, n_fit_rows=dm.n_rows if dm is not None else None, n_test=evaluation.n,
            front_accuracy=self.donor_accuracy[0], end_accuracy=self.donor_accuracy[1], sparsity=sparsity(stitcher),
            train_history=history,
            seconds={"fit": t_fit - started, "train": t_train - t_fit, "eval": t_eval - t_train, "total": t_eval - started,
                     "shared_extraction": self.extraction_seconds},
            front={**self.front.describe(), "layers": list(lf.layers), "layer_index": lf.index(front_layer),
                   "source_shape": list(stitcher.source_shape)},
            end={**self.end.describe(), "layers": list(le.layers), "layer_index": le.index(end_layer),
                 "target_shape": list(stitcher.target_shape)},
            dataset=self.info.name, options={**s.result_options(), "resolved_stitching_type": stitcher.kind}, config_key=self.key,
            run_name=name,
        )
        return result, stitcher

    def _fit_residual(self, stitcher: Stitcher, dm, fit_pairs: PairSource) -> float:
        """In-sample residual of the installed map on the source the stitched network sees."""
        only_affine = len(stitcher.trainable_parameters()) == 2  # no learned CLS weight whose training would change the source
        try:
            if dm is not None and dm.stats is not None and self.s.front_pinv_rank == self.s.front_stitch_rank and (self.s.epochs == 0 or only_affine):
                return dm.stats.residual(*stitcher.layer.affine())
            return fit_statistics(stitcher, fit_pairs).residual(*stitcher.layer.affine())
        except StitchkitError:
            return math.nan  # e.g. rc2c_post across sizes has no target in the transform's layout

    def write_run(self, final_dir: Path, result: StitchResult, stitcher: Stitcher, *, command: str, save_dir_label: str) -> None:
        s = self.s
        config = original_config(self.front, self.end, result.front_layer, result.end_layer, self.info.name, s, save_dir_label)
        full_config = {
            "command": "stitch", "stitchkit_version": __version__, "front": self.front.describe(), "end": self.end.describe(),
            "front_layer": result.front_layer, "end_layer": result.end_layer, "dataset": self.info.name,
            "input_shape": list(self.input_shape), "settings": s.to_dict(), "run_name": result.run_name, "config_key": self.key,
            "device": str(self.device),
        }

        def write(folder: Path) -> None:
            write_text_atomic(folder / "summary.txt", summary_text(result, command))
            write_json_atomic(folder / "config.txt", config)
            write_json_atomic(folder / CONFIG_FILE, full_config)
            if s.save_weights:
                torch_save_atomic(stitcher.stitching_state_dict(), folder / WEIGHTS_FILE)
                basis = stitcher.reduce.basis
                if basis is not None:
                    torch_save_atomic({"rank": basis.rank, "mean": basis.mean.cpu(), "basis": basis.basis.cpu()}, folder / BASIS_FILE)
            if result.train_history:
                write_csv_atomic(folder / "training_logs.csv", result.train_history)
            write_json_atomic(folder / RESULT_FILE, result.to_dict())

        _publish(final_dir, write, s.overwrite)
        result.run_dir = str(final_dir)


def _resolve_dataset(name: str | None, front: Donor, end: Donor) -> str:
    if name:
        return name
    described = {d.dataset for d in (front, end) if d.dataset}
    if len(described) > 1:
        raise StitchkitError(f"the checkpoints were trained on different datasets ({', '.join(sorted(described))}); choose one with -d")
    return described.pop() if described else "cifar10"


# --------------------------------------------------------------------------------------------------
# public entry points


def _printer(settings: StitchSettings) -> Callable[[str], None]:
    return (lambda line: print(line, flush=True)) if settings.verbose else (lambda line: None)


def stitch_grid(
    front: str | os.PathLike | nn.Module | Donor,
    end: str | os.PathLike | nn.Module | Donor,
    front_layers: str | Sequence[str] = "all",
    end_layers: str | Sequence[str] = "all",
    settings: StitchSettings | None = None,
    *,
    save_dir: str | os.PathLike | None = None,
    front_type: str | None = None,
    end_type: str | None = None,
    model_options: dict[str, Any] | None = None,
    command: str | None = None,
    save_dir_label: str | None = None,
    on_result: Callable[[StitchResult], None] | None = None,
) -> list[StitchResult]:
    """Stitch every (front layer, end layer) pair in one process; returns one record per pair (front-major).

    ``front``/``end`` are checkpoint paths (with ``front_type``/``end_type`` for the original's plain
    state_dicts), models or :class:`Donor`\\ s; the same model may be both. Layers are ``"all"``, a
    comma-separated string or a list. With ``save_dir`` every pair gets a run folder there, and pairs
    whose folder is already finished are skipped (their stored record is returned, ``skipped=True``)
    unless ``settings.overwrite``. Several pairs share activations extracted once (see the module
    docstring); a single pair streams them instead.
    """
    settings = replace(settings or StitchSettings()).validate()  # a copy: the cache folder is filled in below
    log = _printer(settings)
    front_d = load_donor(front, front_type, dataset=settings.dataset, model_options=model_options)
    same_file = isinstance(end, (str, os.PathLike)) and isinstance(front, (str, os.PathLike)) and str(end) == str(front) and end_type == front_type
    end_d = front_d if (end is front or same_file) else load_donor(end, end_type, dataset=settings.dataset, model_options=model_options)
    fls = resolve_layers(front_d.model, front_layers)
    els = resolve_layers(end_d.model, end_layers)
    session = _Session(front_d, end_d, settings, log=log)
    pairs = [(fl, el) for fl in fls for el in els]
    results: dict[tuple[str, str], StitchResult] = {}
    names = {pair: run_name(pair[0], pair[1], front_d, end_d, session.info.name, settings) for pair in pairs}
    root = Path(save_dir) if save_dir is not None else None
    todo = []
    for pair in pairs:
        final = root / names[pair] if root is not None else None
        if final is not None and is_finished(final) and not settings.overwrite:
            results[pair] = StitchResult.load(final)
            results[pair].skipped = True
            log(f"skipping {pair[0]} -> {pair[1]}: finished run in {final} (pass --overwrite to redo it)")
        else:
            todo.append(pair)
    command = command or "python: stitchkit.stitching.stitch_grid"
    label = save_dir_label if save_dir_label is not None else (str(root) if root is not None else "")
    try:
        if len(todo) > 1:
            if settings.cache_dir is None:
                session.remove_cache = True
                base = root if root is not None else Path(tempfile.mkdtemp(prefix="stitchkit-activations-"))
                settings.cache_dir = str(base / ".activation_cache")
            session.prepare_cache(sorted({p[0] for p in todo}, key=fls.index), sorted({p[1] for p in todo}, key=els.index))
        for i, (fl, el) in enumerate(todo):
            result, stitcher = session.run_pair(fl, el, names[(fl, el)])
            if root is not None:
                session.write_run(root / names[(fl, el)], result, stitcher, command=command, save_dir_label=label)
            results[(fl, el)] = result
            where = f" -> {result.run_dir}" if result.run_dir else ""
            if len(pairs) > 1:
                log(f"[{i + 1}/{len(todo)}] {fl} -> {el}: Clean accuracy: {100 * result.accuracy:.2f}% | residual {result.residual:.4f} "
                    f"| fit residual {result.fit_residual:.4f}{where}")
            if on_result is not None:
                on_result(result)
    finally:
        session.close()
    return [results[pair] for pair in pairs]


def stitch_pair(
    front: str | os.PathLike | nn.Module | Donor,
    end: str | os.PathLike | nn.Module | Donor,
    front_layer: str,
    end_layer: str,
    settings: StitchSettings | None = None,
    **kwargs: Any,
) -> StitchResult:
    """Stitch one pair (activations streamed, nothing cached); keywords as :func:`stitch_grid`."""
    return stitch_grid(front, end, [front_layer], [end_layer], settings, **kwargs)[0]


def load_stitcher(run_dir: str | os.PathLike, *, device: str | torch.device = "cpu", front: nn.Module | None = None,
                  end: nn.Module | None = None) -> Stitcher:
    """Rebuild the stitched network of a finished run folder: the donors from their recorded checkpoints
    (or the given models), the stitching layer from ``final_model.pt`` and a fixed low-rank basis from
    ``low_rank_basis.pt``."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise StitchkitError(f"{str(run_dir)!r} is not a stitch run folder ({exc})") from None
    settings = StitchSettings.from_dict(config["settings"])
    models = []
    for given, role in ((front, "front"), (end, "end")):
        if given is not None:
            models.append(given)
            continue
        desc = config[role]
        path = desc.get("path")
        if path and not Path(path).exists() and desc.get("abs_path"):
            path = desc["abs_path"]
        if not path:
            raise StitchkitError(f"the {role} model of {str(run_dir)!r} was given in memory; pass it as {role}=")
        models.append(load_donor(path, desc.get("model_type"), dataset=config["dataset"]).model)
    if config["front"]["fingerprint"] == config["end"]["fingerprint"] and front is None and end is None:
        models[1] = models[0]
    stitcher = Stitcher(
        models[0], models[1], config["front_layer"], config["end_layer"], settings.stitching_type, input_shape=config["input_shape"],
        upsample_mode=settings.upsample_mode, c2t_cls=settings.c2t_cls, t2c_cls=settings.t2c_cls,
        front_rank=settings.front_stitch_rank, low_rank_mode=settings.low_rank_mode,
    )
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise StitchkitError(f"{str(run_dir)!r} has no {WEIGHTS_FILE} (was it run with --no-save?)")
    stitcher.layer.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    if stitcher.reduce.basis is not None:
        saved = torch.load(run_dir / BASIS_FILE, map_location="cpu", weights_only=True)
        stitcher.reduce.basis.mean = saved["mean"]
        stitcher.reduce.basis.basis = saved["basis"]
    return stitcher.to(device)


__all__ = [
    "CONVENTIONS", "Donor", "LOW_RANK_MODES", "StitchResult", "StitchSettings", "config_key", "is_finished", "load_donor",
    "load_stitcher", "original_config", "resolve_layers", "run_name", "stitch_grid", "stitch_pair", "summary_text",
]
