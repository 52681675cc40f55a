"""The options of a stitching experiment (:class:`StitchSettings`) and the conventions recorded with
every result. Defaults are the original's ``exec_stitch.py`` (spec 1.3) where it has the option."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..choices import DEFAULT_AUGMENTATION, GROUPINGS
from ..data.augmentation import check_augmentation
from ..data.loading import check_data_path
from ..errors import StitchkitError, unknown_name
from ..ranks import check_rank
from ..ranks import low_rank_mode as canonical_low_rank_mode  # the field is named low_rank_mode
from ..stitch_methods import DEFAULT_DM_SOLVER, DM_SOLVERS
from ..training.optim import OptimConfig, describe_schedule
from ..utils.numbers import check_finite, check_seed
from ..utils.run_options import RunOptions
from .layers import INITS, UPSAMPLE_MODES, list_stitching_layers

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
    "dm_dropped": "singular values of [X, 1] (in_features + 1 of them; X the fit rows of the transform input) that the "
    "direct-matching solver's cutoff treats as zero; dm_rank = in_features − dm_dropped is the rank of the centred "
    "source it used",
    "low_rank_source": "both --front-stitch-rank and --front-pinv-rank truncate the front activation before the "
    "stitching layer (the original truncated the resized source for the pinv fit)",
    "donors": "frozen (requires_grad False) and always in eval mode (BatchNorm statistics never change)",
    "accuracy": "top-1 on the test split (first test_samples images when set), fraction",
    "positive_class": "n/a",
}

#: the ``direct_matching`` convention of ``--dm-solver original`` (the others stay as above)
ORIGINAL_SOLVER_CONVENTIONS = {
    "direct_matching": "the original's solve (--dm-solver original): A = torch.linalg.pinv([X, 1]) · Y in float32 on "
    "the CPU, "
    "all rows of the K fit images in one matrix, torch's default cutoff (singular values ≤ eps32 · max(rows, columns) "
    "· σ_max "
    "count as zero, dm_dropped of them); rows are spatial positions (conv) or tokens including CLS; source = the "
    "stitching layer's transform input (after resizing)",
    "dm_reported_residual": "the original's 'Normalized PINV difference': in-sample residual of a second float32 pinv "
    "solve with "
    "atol = rtol = 0 (not the installed map; fit_residual and dm_fit_residual are those of the installed map)",
}


@dataclass
class StitchSettings(RunOptions):
    """Everything that shapes a stitch. Defaults are the original's ``exec_stitch.py``, except
    ``low_rank_mode`` (``"fixed"``; the original's behaviour is ``"per_batch"``) and ``device``.

    ``fit_samples`` is K of direct matching (``-pinv-samples``); ``None`` uses the whole training split.
    ``dm_solver``: ``"stitchkit"`` (streamed float64 least squares, minimum-norm; :mod:`.direct_match`) or
    ``"original"`` (the original's float32 pinv with torch's default cutoff on the K images in one batch;
    :mod:`.original_solver`), which names the run only when it is not the default.
    ``test_samples`` evaluates on the first N test images (quick runs; None = all, like the original);
    ``train_samples`` trains on a fixed seeded random subset of the training split (None = all).
    ``augment``: the augmentation of the training images (:data:`~stitchkit.choices.AUGMENTATIONS`):
    ``"network"`` (the end network's, as its checkpoint records; the dataset's default when it records
    nothing), ``"dataset"`` or ``"none"``; it names the run only where the images differ from the
    dataset's default augmentation (what every run trained on before the option existed).
    ``memory_limit_gb`` bounds the activations a grid keeps in RAM; larger sets are memory-mapped under
    ``cache_dir`` (default ``<save_dir>/.activation_cache``, removed when the grid finishes).

    How the work is done: ``grouping`` ``"grouped"`` trains and evaluates all pairs of a grid together,
    one front pass per batch and one end-suffix pass per ``group_size`` pairs (None: as many as the
    free memory holds; :mod:`.grouped`); ``"per-pair"`` is the reference. ``data_path`` (``auto``,
    ``device``, ``loader``) chooses how batches are made (:func:`stitchkit.data.loading.make_batches`).
    ``amp``: bf16 autocast of the donors and stitching layers during TLM training and validation on
    CUDA (the final evaluation stays float32); ``channels_last`` (None: on), ``fold_batchnorm`` (None: on;
    the donors' BatchNorms folded into their convolutions, :mod:`stitchkit.models.folding`) and ``compile``
    (``torch.compile`` of the cut modules, eager fallback) are speed options. ``activation_cache`` is a
    persistent folder for the donors' accuracies and the end network's activations of the test set,
    by content hash and sample set (single pairs, run one process after another, then skip both
    networks' extra passes), at most ``cache_limit_gb`` big.

    How sure: ``bootstrap`` resamples of the test images (0: no intervals) give each result percentile
    intervals at ``bootstrap_level``, seeded with ``bootstrap_seed`` (None: ``seed``), from the per-image
    statistics every evaluation keeps (:mod:`.intervals`); they change no number and name no run, so
    turning them on never re-runs a finished pair.
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
    dm_solver: str = DEFAULT_DM_SOLVER
    augment: str = DEFAULT_AUGMENTATION
    dataset: str | None = None
    download: bool = True
    workers: int = field(default=1, kw_only=True)  # RunOptions, with the original's default
    save_weights: bool = True
    overwrite: bool = False
    cache_dir: str | None = None
    memory_limit_gb: float = 1.0
    # --- how the work is done (results are the same up to float noise; not part of the run name) ---
    grouping: str = "grouped"
    group_size: int | None = None
    data_path: str = "auto"
    amp: bool = False
    channels_last: bool | None = None
    fold_batchnorm: bool | None = None
    compile: bool = False
    activation_cache: str | None = None
    cache_limit_gb: float = 4.0
    # --- how sure (intervals from the kept per-image statistics; not part of the run name) ---
    bootstrap: int = 0
    bootstrap_level: float = 0.95
    bootstrap_seed: int | None = None

    def validate(self) -> StitchSettings:
        if self.stitching_type not in list_stitching_layers():
            raise unknown_name("stitching type", self.stitching_type, list_stitching_layers())
        if self.init not in INITS:
            raise unknown_name("init", self.init, INITS)
        if self.upsample_mode not in UPSAMPLE_MODES:
            raise unknown_name("upsample mode", self.upsample_mode, UPSAMPLE_MODES)
        self.low_rank_mode = canonical_low_rank_mode(self.low_rank_mode)
        check_rank(self.front_stitch_rank, "--front-stitch-rank", full=True)
        check_rank(self.front_pinv_rank, "--front-pinv-rank", full=True)
        self.optim.validate()
        check_seed(self.seed)
        if self.bootstrap_seed is not None:
            check_seed(self.bootstrap_seed, "bootstrap seed")
        check_finite({"L1 coefficient (-l1)": self.l1, "gradient clipping threshold (--grad-clip)": self.grad_clip})
        checks = [
            (self.epochs >= 0, f"epochs (-e) must be 0 (direct matching only) or more, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size (-b) must be at least 1, got {self.batch_size}"),
            (
                self.fit_samples is None or self.fit_samples >= 1,
                f"-pinv-samples must be at least 1, got {self.fit_samples}",
            ),
            (
                self.test_samples is None or self.test_samples >= 1,
                f"--test-samples must be at least 1, got {self.test_samples}",
            ),
            (
                self.train_samples is None or self.train_samples >= 1,
                f"--train-subset must be at least 1, got {self.train_samples}",
            ),
            (self.l1 >= 0, f"L1 coefficient (-l1) must be non-negative, got {self.l1}"),
            (
                self.grad_clip is None or self.grad_clip > 0,
                f"gradient clipping threshold must be positive, got {self.grad_clip}",
            ),
            (self.memory_limit_gb >= 0, f"memory limit must be non-negative, got {self.memory_limit_gb}"),
            (
                self.group_size is None or (isinstance(self.group_size, int) and self.group_size >= 1),
                f"--group-size must be at least 1 pair per suffix pass, got {self.group_size}",
            ),
            (self.cache_limit_gb >= 0, f"--cache-limit-gb must be non-negative, got {self.cache_limit_gb}"),
            (
                isinstance(self.bootstrap, int) and self.bootstrap >= 0,
                f"--bootstrap must be 0 (off) or a number of resamples, got {self.bootstrap}",
            ),
            (
                0 < self.bootstrap_level < 1,
                f"the confidence level must be between 0 and 1 (e.g. 0.95), got {self.bootstrap_level}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise StitchkitError(message)
        self.check_run_options()
        if self.grouping not in GROUPINGS:
            raise unknown_name("grouping", self.grouping, GROUPINGS)
        check_data_path(self.data_path)
        check_augmentation(self.augment, "augment")
        if self.front_pinv_rank is not None and self.init != "pinv":
            raise StitchkitError("--front-pinv-rank only applies to direct matching; add -i pinv")
        if self.dm_solver not in DM_SOLVERS:
            raise unknown_name("direct-matching solver (--dm-solver)", str(self.dm_solver), DM_SOLVERS)
        if self.dm_solver == "original":
            if self.init != "pinv":
                raise StitchkitError("--dm-solver original only applies to direct matching; add -i pinv")
            if self.fit_samples is None:
                raise StitchkitError(
                    "--dm-solver original fits the K fit images in one batch, as the original did; "
                    "give their number with -pinv-samples K (the original's default is 100)"
                )
            if self.rcond is not None:
                raise StitchkitError(
                    "rcond is the cutoff of stitchkit's solver; --dm-solver original uses torch's default cutoff"
                )
        # 0 epochs is direct matching; any other start left untrained is no stitching result
        if self.epochs == 0 and self.init != "pinv":
            raise StitchkitError(
                f"0 epochs (-e 0) with init {self.init!r} would record an untrained stitching layer (its starting "
                f"point) as a "
                "result; train it (-e 1 or more) or fit it by direct matching (-i pinv)"
            )
        return self

    def conventions(self) -> dict[str, str]:
        """The conventions recorded with a result of these settings."""
        return {
            **CONVENTIONS,
            **(ORIGINAL_SOLVER_CONVENTIONS if self.dm_solver == "original" else {}),
            **({"lr_schedule": describe_schedule(self.optim)} if self.epochs > 0 else {}),
        }

    def result_options(self) -> dict[str, Any]:
        """The options that change the numbers (they name the run); not device, loaders or paths."""
        return {
            "stitching_type": self.stitching_type,
            "init": self.init,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optim": self.optim.identity()
            if self.epochs > 0
            else None,  # the per-step schedule only where it changes the LRs
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
            **(
                {"amp": "bf16"} if self.amp and self.epochs > 0 else {}
            ),  # only when it changes the numbers (old names stay)
            **({"dm_solver": self.dm_solver} if self.dm_solver != DEFAULT_DM_SOLVER else {}),  # likewise
            # likewise: only where the training images differ from the dataset's default augmentation. Runs
            # are named by the session's settings, with the augmentation as it acts there ("dataset" or "none",
            # GridSession.naming_settings), never with "network" unresolved.
            **({"augment": self.augment} if self.epochs > 0 and self.augment == "none" else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StitchSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("optim"), dict):
            values["optim"] = OptimConfig(**values["optim"])
        return cls(**values)
