"""The record of one stitched pair (:class:`StitchResult`) and how runs are named and described: the
config key, the deterministic run name, the original's ``summary.txt`` and ``config.txt``."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import StitchkitError
from ..results.display import number
from ..utils.io import json_safe
from .donors import Donor
from .per_sample import PairSamples, load_run_samples
from .settings import CONVENTIONS, StitchSettings

#: The files of a run folder.
RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "final_model.pt"
BASIS_FILE = "low_rank_basis.pt"


@dataclass(repr=False)
class StitchResult:
    """One stitched pair: what was measured, on what, with which options and conventions.

    Metrics: ``accuracy`` and ``loss`` of the stitched network on the test split; ``residual`` (pooled) and
    ``residual_batch_mean`` (the original's "Normalized representation difference") of the installed
    map on the test split; ``fit_residual`` of the installed map in-sample on the fit images (the
    original's "Normalized PINV difference", here always of the installed map); ``dm_fit_residual`` of
    the direct-matching solution before training (``init == "pinv"``); the donors' own accuracies;
    ``sparsity`` of the transform's weight, bias and both; wall ``seconds``. ``dm_dropped``: singular values
    of ``[X, 1]`` the direct-matching solver's cutoff set to zero; ``dm_reported_residual``: the original's
    "Normalized PINV difference" (``--dm-solver original`` only, see the conventions).

    How sure: ``samples`` keeps the evaluation's per-image statistics (:class:`~.per_sample.PairSamples`;
    in ``per_sample.npz`` beside ``result.json``, not in :meth:`to_dict`); with a bootstrap
    (``StitchSettings.bootstrap``) ``accuracy_ci``, ``residual_ci`` and ``relative_accuracy_ci`` (accuracy /
    the end network's accuracy, resampled jointly on the same images) are ``[lower, upper]`` percentile
    intervals and ``interval`` records how they were made (:mod:`.intervals`).
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
    #: how it was computed (grouping, group size, data path, device, precision); not what was computed
    execution: dict[str, Any] = field(default_factory=dict)
    dm_dropped: int | None = None
    dm_reported_residual: float | None = None
    run_dir: str | None = None
    skipped: bool = False
    accuracy_ci: list[float] | None = None
    residual_ci: list[float] | None = None
    relative_accuracy_ci: list[float] | None = None
    interval: dict[str, Any] | None = None
    samples: PairSamples | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        """One line of what was measured (every field: :meth:`to_dict`)."""
        donors = ", ".join(
            f"{role} {number(value)}"
            for role, value in (("front", self.front_accuracy), ("end", self.end_accuracy))
            if value is not None
        )
        relative = f", relative {number(self.relative_accuracy)}" if self.relative_accuracy is not None else ""
        return (
            f"StitchResult {self.front_layer} -> {self.end_layer} ({self.stitching_type}, init {self.init}, "
            f"{self.epochs} epochs, {self.dataset}): accuracy "
            f"{number(self.accuracy)}{f' (networks alone: {donors})' if donors else ''}{relative}, "
            f"residual {number(self.residual)}, {self.n_test} test images"
        )

    @property
    def relative_accuracy(self) -> float | None:
        """The stitched network's accuracy over the end network's, on the same images (None where the
        end network's accuracy is unknown or 0)."""
        return self.accuracy / self.end_accuracy if self.end_accuracy else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (without the per-image ``samples``); NaN and infinities become ``None``."""
        return json_safe({k: v for k, v in asdict(replace(self, samples=None)).items() if k != "samples"})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StitchResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("accuracy", "loss", "residual", "residual_batch_mean", "fit_residual"):
            if values.get(key) is None:
                values[key] = math.nan
        return cls(**values)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> StitchResult:
        path = Path(run_dir) / RESULT_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StitchkitError(f"cannot read stitch result {str(path)!r}: {exc}") from None
        result = cls.from_dict(data)
        result.run_dir = str(run_dir)
        result.samples = load_run_samples(run_dir)
        return result


def _hash(obj: Any, n: int = 10) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def config_key(front: Donor, end: Donor, dataset: str, settings: StitchSettings) -> str:
    """Identifies an experiment up to the layer pair: both models by content, the data and the options."""
    return _hash(
        {"front": front.fingerprint, "end": end.fingerprint, "dataset": dataset, "options": settings.result_options()}
    )


def run_name(front_layer: str, end_layer: str, front: Donor, end: Donor, dataset: str, settings: StitchSettings) -> str:
    """The deterministic folder name of one pair's run."""
    digest = _hash(
        {"key": config_key(front, end, dataset, settings), "front_layer": front_layer, "end_layer": end_layer}
    )
    safe = lambda s: "".join(c if c.isalnum() or c in "._-" else "-" for c in s)  # noqa: E731
    pair = f"{safe(front_layer)}__{safe(end_layer)}"
    return f"{pair}__{settings.stitching_type}__{settings.init}_e{settings.epochs}__{digest}"


def summary_text(result: StitchResult, command: str) -> str:
    """``summary.txt`` in the original's exact line format (trailing spaces included), with the values
    of the installed map and the sparsity of weight and bias together (the original's typo fixed)."""
    front_path = result.front.get("path") or f"<memory:{result.front['fingerprint']}>"
    end_path = result.end.get("path") or f"<memory:{result.end['fingerprint']}>"
    s = result.sparsity["all"]
    return (
        f"Front model: {front_path} \nEnd model: {end_path} \nFront layer: {result.front_layer} \n"
        f"End layer: {result.end_layer} \nClean accuracy: {result.accuracy:.4f} \n"
        f"Normalized PINV difference: {result.fit_residual:.4f}\n"
        f"Normalized representation difference: {result.residual_batch_mean:.4f}\n"
        "\n"
        f"Command: {command}\n"
        "\nSparsity\n"
        f"0: \t\t{s['0']}\n1e-5: \t{s['1e-5']}\n1e-4: \t{s['1e-4']}\n1e-3: \t{s['1e-3']}\n1e-2: \t{s['1e-2']}\n"
        f"1e-1: \t{s['1e-1']}\n"
    )


def original_config(
    front: Donor, end: Donor, front_layer: str, end_layer: str, dataset: str, settings: StitchSettings, save_dir: str
) -> dict[str, Any]:
    """``config.txt``: the arguments under the original's names (``exec_eval_stitcher_ood.py`` read them),
    then stitchkit's additions."""
    s = settings
    return {
        "front_model_path": front.path,
        "end_model_path": end.path,
        "front_model_type": front.model_type,
        "end_model_type": end.model_type,
        "front_layer": front_layer,
        "end_layer": end_layer,
        "stitching_type": s.stitching_type,
        "gpu": s.device,
        "dataset": dataset,
        "optimizer": s.optim.optimizer,
        "batch_size": s.batch_size,
        "n_epochs": s.epochs,
        "learning_rate": s.optim.lr,
        "weight_decay": s.optim.weight_decay,
        "seed": s.seed,
        "reduce_lr_epochs": list(s.optim.milestones),
        "dataset_root": s.data_root,
        "n_workers": s.workers,
        "prefetch_factor": s.prefetch,
        "save_dir": save_dir,
        "no_save": not s.save_weights,
        "mod_only_stitch": True,
        "init": s.init,
        "n_pinv_init_samples": s.fit_samples,
        "l1_coef": s.l1,
        "c2t_cls_token": s.c2t_cls,
        "t2c_cls_token": s.t2c_cls,
        "upsample_mode": s.upsample_mode,
        "front_stitch_rank": s.front_stitch_rank,
        "front_pinv_rank": s.front_pinv_rank,
        # stitchkit's additions
        "lr_scheduler": s.optim.scheduler,
        "grad_clip": s.grad_clip,
        "low_rank_mode": s.low_rank_mode,
        "test_samples": s.test_samples,
        "train_subset": s.train_samples,
    }
