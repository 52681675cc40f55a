"""Options shared by several commands, in the original's spellings and ours."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..choices import AUGMENTATIONS, DATA_PATHS, DEFAULT_AUGMENTATION, SCHEDULE_UNITS, SCHEDULERS
from ..errors import StitchkitError
from ..ranks import LOW_RANK_MODES, low_rank_mode
from ..uncertainty.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, BootstrapSpec
from ..utils.numbers import is_finite_number


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples keep their layout; every option with a value shows its default (switches and options
    without a default do not: "(default: True)" on a --no-X switch only confuses)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool) or action.default == []:
            return action.help or ""
        return super()._get_help_string(action)


def finite_float(text: str) -> float:
    """The type of every numeric option: a float, but neither NaN nor an infinity (argparse names the option)."""
    value = float(text)
    if not is_finite_number(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def add_command(
    sub, name: str, *, help: str, description: str, examples: str, original_output: bool = False
) -> argparse.ArgumentParser:
    """A subcommand's parser; with ``original_output`` it also takes :data:`ORIGINAL_OUTPUT` (the command
    prints a compact summary by default, and the original code's text format with the flag)."""
    parser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    if original_output:
        parser.add_argument(
            ORIGINAL_OUTPUT,
            dest="original_output",
            action="store_true",
            help="print the original code's text format (every number, as its scripts printed them) instead of the "
            "compact summary; the files written are the same either way",
        )
    return parser


#: the flag of every command with two printouts: the original's text format instead of the summary
ORIGINAL_OUTPUT = "--original-output"


def percent(value: float | None) -> str:
    """An accuracy (a fraction) as the summaries print it: ``91.23%``, or ``n/a``."""
    return "n/a" if value is None or value != value else f"{100 * value:.2f}%"


def print_wrote(*paths: Any) -> None:
    """The last line of a summary: where the command wrote (nothing when it wrote nothing)."""
    shown = [str(p) for p in paths if p]
    if shown:
        print("wrote " + ", ".join(shown))


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-gpu",
        "--gpu",
        "--device",
        dest="device",
        default="auto",
        help="device: -1 or cpu for the CPU, a GPU index (0) or cuda:N; auto picks a GPU when there is one",
    )


def add_data(parser: argparse.ArgumentParser, default: str | None = "cifar10", help_extra: str = "") -> None:
    parser.add_argument(
        "-d",
        "--dataset",
        default=default,
        help="dataset name (`stitchkit datasets` lists them), or your own data: folder:PATH or npz:PATH, optionally "
        "@HxW" + help_extra,
    )
    parser.add_argument(
        "-data",
        "--dataset-root",
        "--data",
        dest="data_root",
        default=None,
        help="data root; default $STITCHKIT_DATA or ./data (Fashion-MNIST is also found where Debian's "
        "dataset-fashion-mnist installs it)",
    )


def add_loader(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-workers", "--loader-workers", dest="workers", type=int, default=1, help="data loader worker processes"
    )
    parser.add_argument(
        "-prefetch",
        "--prefetch-factor",
        dest="prefetch",
        type=int,
        default=1,
        help="batches prefetched per worker (ignored with 0 workers)",
    )


def add_bootstrap(parser: argparse.ArgumentParser, what: str) -> None:
    """``--bootstrap B`` (0: no intervals), ``--level`` and ``--bootstrap-seed``: percentile intervals of
    ``what`` from resampling the test images (:mod:`stitchkit.uncertainty.bootstrap`)."""
    parser.add_argument(
        "--bootstrap",
        dest="bootstrap",
        type=int,
        default=0,
        metavar="B",
        help=f"bootstrap resamples of the test images for percentile intervals of {what} (0: none; e.g. "
        f"{DEFAULT_RESAMPLES})",
    )
    parser.add_argument(
        "--level", dest="level", type=finite_float, default=DEFAULT_LEVEL, help="confidence level of the intervals"
    )
    parser.add_argument(
        "--bootstrap-seed",
        dest="bootstrap_seed",
        type=int,
        default=0,
        help="seed of the bootstrap's resamples (recorded)",
    )


def bootstrap_spec(args: argparse.Namespace) -> BootstrapSpec:
    """The :class:`~stitchkit.uncertainty.bootstrap.BootstrapSpec` of :func:`add_bootstrap`'s options."""
    if args.bootstrap < 0:
        raise StitchkitError(f"--bootstrap must be a number of resamples, 0 for none, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise StitchkitError(f"--level must be a confidence level between 0 and 1 (e.g. 0.95), got {args.level:g}")
    return BootstrapSpec(resamples=args.bootstrap, level=args.level, seed=args.bootstrap_seed)


def add_data_path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-path",
        dest="data_path",
        default="auto",
        choices=DATA_PATHS,
        help="how batches are made: device = the uint8 images kept on the device and augmented there in batches (the "
        "same batches "
        "as a 0-worker loader, no loader processes), loader = a DataLoader (-workers), auto = device where that "
        "reproduces the loader",
    )


def schedulers_help(default: str = "none") -> str:
    """The help of an -sched option: every schedule with what it does."""
    return f"LR schedule (default {default}): " + "; ".join(f"{name} = {text}" for name, text in SCHEDULERS.items())


def add_schedule(parser: argparse.ArgumentParser, *, scheduler: bool = False) -> None:
    """--schedule-unit and --warmup-fraction (and, with ``scheduler``, -sched for a command that has none of
    its own)."""
    if scheduler:
        parser.add_argument(
            "-sched",
            "--lr-scheduler",
            dest="scheduler",
            default="none",
            choices=list(SCHEDULERS),
            help=schedulers_help(),
        )
    parser.add_argument(
        "--schedule-unit",
        dest="schedule_unit",
        default="epoch",
        choices=list(SCHEDULE_UNITS),
        help="when the LR schedule advances: " + "; ".join(f"{name} = {text}" for name, text in SCHEDULE_UNITS.items()),
    )
    parser.add_argument(
        "--warmup-fraction",
        dest="warmup_fraction",
        type=finite_float,
        default=0.0,
        metavar="F",
        help="with --schedule-unit step: warm up over the first round(F·T) of the run's T optimizer steps, 0 ≤ F < 1 "
        "(the LR rises linearly to its peak, for onecycle from lr/25 along a half cosine)",
    )


def add_augment(parser: argparse.ArgumentParser, what: str, *, no_augment: str | None = None) -> None:
    """``--augment`` (:data:`~stitchkit.choices.AUGMENTATIONS`) for the images ``what`` trains on; with
    ``no_augment`` (its help) also the older ``--no-augment``, which means ``--augment none``."""
    parser.add_argument(
        "--augment",
        dest="augment",
        default=DEFAULT_AUGMENTATION,
        choices=list(AUGMENTATIONS),
        help=f"augmentation of the images {what} trains on: "
        + "; ".join(f"{k} = {v}" for k, v in AUGMENTATIONS.items()),
    )
    if no_augment is not None:
        parser.add_argument(
            "--no-augment", dest="augment", action="store_const", const="none", help=no_augment + " (= --augment none)"
        )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="base width of CIFAR-style ResNets (64 in the original; 16 is quick on a CPU)",
    )
    parser.add_argument(
        "--model-option",
        dest="model_option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other architecture option, e.g. depth=4 or embed_dim=96 for a small ViT (repeatable)",
    )


def add_weights(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="start a torchvision:NAME or timm:NAME model from the pretrained weights in this local state_dict file "
        "(plain, or under "
        "'state_dict' or 'model'; 'module.' prefixes stripped): like --model-option pretrained=true, without a "
        "download. A head for another class count is replaced by a fresh one, as with downloaded weights",
    )


def parse_value(text: str) -> Any:
    """JSON scalars (numbers, true/false, null) or the bare string; never eval()."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in getattr(args, "model_option", []) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise StitchkitError(f"--model-option takes KEY=VALUE, got {item!r}")
        options[key.strip()] = parse_value(value.strip())
    if getattr(args, "width", None) is not None:
        options["width"] = args.width
    if getattr(args, "weights", None):
        options["weights"] = str(Path(args.weights).expanduser().absolute())  # recorded with the model, so absolute
    return options


def args_as_config(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed arguments as plain data (the original's config.txt), without internals."""
    return {k: v for k, v in vars(args).items() if k not in ("handler",) and not callable(v)}


def add_low_rank_mode(parser: argparse.ArgumentParser, help: str) -> None:
    """``--low-rank-mode`` in the one spelling of :data:`~stitchkit.ranks.LOW_RANK_MODES` (the stitch
    command's earlier ``per-batch`` still read, with a deprecation warning)."""
    parser.add_argument(
        "--low-rank-mode",
        dest="low_rank_mode",
        default="fixed",
        type=_low_rank_mode,
        metavar="{" + ",".join(LOW_RANK_MODES) + "}",
        help=help,
    )


def _low_rank_mode(text: str) -> str:
    try:
        return low_rank_mode(text)
    except StitchkitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
