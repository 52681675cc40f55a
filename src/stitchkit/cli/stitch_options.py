"""The options of ``stitchkit stitch`` (:mod:`.stitch` registers the command and runs it), in groups
in the order ``--help`` lists them."""

from __future__ import annotations

import argparse

from ..choices import C2T_CLS_MODES, OPTIMIZERS, SCHEDULERS, T2C_CLS_MODES, UPSAMPLE_MODES
from ..stitch_methods import DEFAULT_DM_SOLVER, DM_SOLVERS
from .common import (
    add_augment,
    add_data_path,
    add_low_rank_mode,
    add_schedule,
    finite_float,
    schedulers_help,
)


def _optional_choice(choices, label: str):
    """An option that also takes 'None'/'none' (the original's spelling of "not set")."""

    def parse(text: str):
        if text in ("None", "none", ""):
            return None
        if text not in choices:
            raise argparse.ArgumentTypeError(
                f"invalid {label} {text!r}; choose from None, {', '.join(c for c in choices if c)}"
            )
        return text

    return parse


def add_training_options(p: argparse.ArgumentParser) -> None:
    """The task-loss-matching training options."""
    p.add_argument(
        "-o",
        "--optimizer",
        dest="optimizer",
        default="adam",
        choices=OPTIMIZERS,
        help="optimizer (Adam's weight decay is L2, like the original)",
    )
    p.add_argument(
        "-b",
        "--batch-size",
        dest="batch_size",
        type=int,
        default=256,
        help="batch size of training, evaluation and the direct-matching fit",
    )
    p.add_argument(
        "-e",
        "--epochs",
        dest="n_epochs",
        type=int,
        default=30,
        help="training epochs; 0 = no training (pure direct matching with -i pinv)",
    )
    p.add_argument(
        "-lr", "--learning-rate", dest="learning_rate", type=finite_float, default=1e-3, help="learning rate"
    )
    p.add_argument(
        "-wd",
        "--weight_decay",
        "--weight-decay",
        dest="weight_decay",
        type=finite_float,
        default=1e-5,
        help="weight decay",
    )
    p.add_argument(
        "-s", "--seed", dest="seed", type=int, default=0, help="random seed (fit-image sample, init, training)"
    )
    p.add_argument(
        "-rlre",
        "--reduce-lr-epochs",
        dest="reduce_lr_epochs",
        type=int,
        nargs="*",
        default=[],
        help="multiply the LR by 0.1 after these epochs",
    )
    p.add_argument(
        "-sched",
        "--lr-scheduler",
        dest="lr_scheduler",
        default="none",
        choices=sorted(SCHEDULERS),
        help=schedulers_help(),
    )
    add_schedule(p)
    p.add_argument(
        "--grad-clip",
        dest="grad_clip",
        type=finite_float,
        default=None,
        help="clip the stitching layer's gradient norm to this value",
    )
    add_augment(p, "task loss matching")


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Where the runs are written."""
    p.add_argument(
        "-dir", "--save-dir", dest="save_dir", default="", help="results go to <--results-root>/<dir>/<run name>/"
    )
    p.add_argument(
        "--results-root",
        dest="results_root",
        default="results",
        help="the folder that holds -dir (the original's fixed 'results')",
    )
    p.add_argument(
        "--no-save",
        dest="no_save",
        action="store_true",
        help="do not write final_model.pt (the other files are still written)",
    )
    p.add_argument(
        "--mod-only-stitch",
        dest="mod_only_stitch",
        action="store_true",
        help="accepted for compatibility; always on: the donor networks always stay in eval mode",
    )


def add_matching_options(p: argparse.ArgumentParser) -> None:
    """How the stitching layer is initialised, fitted and shaped."""
    p.add_argument(
        "-i",
        "--init",
        dest="init",
        default="rand",
        choices=["rand", "eye", "pinv"],
        help="initialisation; pinv = direct matching",
    )
    p.add_argument(
        "-pinv-samples",
        "--pinv-init-samples",
        dest="n_pinv_init_samples",
        type=int,
        default=100,
        help="K: training images (no augmentation, seeded random subset) for direct matching, the fixed low-rank basis "
        "and the fit residual; 0 = the whole training split",
    )
    p.add_argument(
        "--dm-solver",
        dest="dm_solver",
        default=DEFAULT_DM_SOLVER,
        choices=list(DM_SOLVERS),
        help="direct-matching solve: stitchkit = least squares from float64 statistics (minimum-norm, the default); "
        "original = the original's float32 torch.linalg.pinv([X, 1]) with torch's default cutoff on the K fit images "
        "in one batch, which drops the source's weak directions (the result records how many as dm_dropped)",
    )
    p.add_argument(
        "-l1",
        "--l1-coef",
        dest="l1_coef",
        type=finite_float,
        default=0.0,
        help="L1 penalty on the stitching weight and bias during training",
    )
    p.add_argument(
        "-c2t-cls",
        "--c2t-cls-token",
        dest="c2t_cls_token",
        type=_optional_choice(C2T_CLS_MODES, "c2t CLS mode"),
        default=None,
        help="c2t CLS token: None, pool or learn",
    )
    p.add_argument(
        "-t2c-cls",
        "--t2c-cls-token",
        dest="t2c_cls_token",
        type=_optional_choice(T2C_CLS_MODES, "t2c CLS mode"),
        default=None,
        help="t2c CLS handling: None (= drop), drop, add or only",
    )
    p.add_argument(
        "-upsample",
        "--upsample-mode",
        dest="upsample_mode",
        default="bilinear",
        choices=list(UPSAMPLE_MODES),
        help="resize mode of rc2c and t2c",
    )
    p.add_argument(
        "--front-stitch-rank",
        dest="front_stitch_rank",
        type=int,
        default=None,
        help="low-rank approximation of the front activation in every stitched forward (training and evaluation); a "
        "rank "
        "above a front layer's channel count is its full rank: a warning says so and the result records the rank used",
    )
    p.add_argument(
        "--front-pinv-rank",
        dest="front_pinv_rank",
        type=int,
        default=None,
        help="low-rank approximation of the front activation for the direct-matching fit (same source definition and "
        "clamping as --front-stitch-rank)",
    )
    add_low_rank_mode(p, "fixed: one basis estimated on the K fit images; per_batch: the original's SVD of every batch")


def add_grid_options(p: argparse.ArgumentParser) -> None:
    """A grid's layers, quick-run subsets, overwriting, and where a grid keeps its activations."""
    p.add_argument(
        "--front-layers",
        dest="front_layers",
        default=None,
        help="front layers of a grid: all or L1,L2,... (instead of the positional)",
    )
    p.add_argument(
        "--end-layers",
        dest="end_layers",
        default=None,
        help="end layers of a grid: all or L1,L2,... (instead of the positional)",
    )
    p.add_argument(
        "--test-samples",
        dest="test_samples",
        type=int,
        default=None,
        help="evaluate on the first N test images only (quick runs)",
    )
    p.add_argument(
        "--train-subset",
        dest="train_subset",
        type=int,
        default=None,
        metavar="N",
        help="train on a fixed random subset of N training images (quick runs; at most the training split's size)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo pairs whose run folder is already finished")
    p.add_argument(
        "--cache-dir",
        dest="cache_dir",
        default=None,
        help="where a grid memory-maps large activation sets (default <dir>/.activation_cache, removed at the end)",
    )
    p.add_argument(
        "--memory-limit-gb",
        dest="memory_limit_gb",
        type=finite_float,
        default=1.0,
        help="a grid keeps up to this many GiB of activations in RAM",
    )


def add_speed_options(p: argparse.ArgumentParser) -> None:
    """Options that change how fast a grid runs, not its numbers (except --amp)."""
    speed = p.add_argument_group("speed (the numbers stay the same up to float rounding, except --amp)")
    speed.add_argument(
        "--per-pair",
        dest="grouping",
        action="store_const",
        const="per-pair",
        default="grouped",
        help="train and evaluate a grid's pairs one after the other (the reference) instead of all together, "
        "one front pass per batch and one end-suffix pass per group of pairs",
    )
    speed.add_argument(
        "--group-size",
        dest="group_size",
        type=int,
        default=None,
        metavar="N",
        help="pairs per end-suffix pass of a grouped grid (default: what the free memory holds; on a CPU ~256 samples)",
    )
    add_data_path(speed)
    speed.add_argument(
        "--amp",
        action="store_true",
        help="bf16 autocast of donors and stitching layers during TLM training on CUDA "
        "(recorded; the final evaluation stays float32)",
    )
    speed.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        default=None,
        help="keep the donors in the default memory layout (channels-last convolutions are faster on CPUs and GPUs)",
    )
    speed.add_argument(
        "--no-fold-batchnorm",
        dest="fold_batchnorm",
        action="store_false",
        default=None,
        help="run the donors as they are instead of a copy with each BatchNorm folded into the convolution before it",
    )
    speed.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network cuts (falls back to eager when compiling fails)",
    )
    speed.add_argument(
        "--activation-cache",
        dest="activation_cache",
        default=None,
        metavar="DIR",
        help="persistent cache of the donors' accuracies and the end network's test activations, so that single pairs "
        "run one after another skip both (default $XDG_CACHE_HOME/stitchkit/activations, i.e. ~/.cache/...)",
    )
    speed.add_argument(
        "--no-activation-cache", dest="use_activation_cache", action="store_false", help="do not use that cache"
    )
    speed.add_argument(
        "--cache-limit-gb",
        dest="cache_limit_gb",
        type=finite_float,
        default=4.0,
        help="largest size of that cache (least recently used go first)",
    )
