"""``stitchkit probe``: linear probes on a frozen network's layers at several ranks (the original's
``exec_probe.py``). The network and the data are loaded once for every (layer, rank)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..choices import TOKEN_POOLS
from ..errors import StitchkitError
from ..ranks import descending, parse_ranks, rank_label
from ..utils.io import check_writable_dir
from .common import (
    add_augment,
    add_bootstrap,
    add_command,
    add_data,
    add_device,
    add_loader,
    add_low_rank_mode,
    add_model_options,
    add_schedule,
    bootstrap_spec,
    finite_float,
    model_options,
    print_wrote,
)

EXAMPLES = """\
  # the original's call: probes on two layers at full rank and ranks 32, 8, 2 (Adam 1e-3, 10 epochs; a plain state_dict
  # records no augmentation, so the probes train on the dataset's default augmentation, as the original's did)
  stitchkit probe models/test/model_5.pt resnet18 -l layer3.1 layer4.1 -ranks 32 8 2 -d cifar10
  # a stitchkit checkpoint (type read from the file), every layer, no augmentation: features are extracted once
  stitchkit probe runs/r18_s0/final.pt -l all --no-augment -o results/probe_s0
  # the original's per-mini-batch low-rank truncation instead of a fixed basis
  stitchkit probe runs/r18_s0/final.pt -l layer2.1 -ranks full 16 4 --low-rank-mode per_batch --verbose
"""


def register(sub) -> None:
    p = add_command(
        sub,
        "probe",
        help="linear probes on a frozen network's layers at several ranks",
        description="Train a linear probe (global average pool for conv layers, CLS token for ViT blocks, vectors as "
        "they "
        "are) on each layer at each rank and print the final test accuracies as a layer × rank table (the original's "
        "format with --original-output). Low rank uses a fixed "
        "basis estimated on the training set (or, with --low-rank-mode per_batch, the original's per-batch SVD). With "
        "-o, writes probes.json and probes.csv (and, with --bootstrap, probe_accuracy.csv with the intervals' bounds).",
        examples=EXAMPLES,
        original_output=True,
    )
    p.add_argument("model_path", help="checkpoint")
    p.add_argument(
        "model_type",
        nargs="?",
        default=None,
        help="architecture; needed only for plain state_dict files (- or auto: from the file)",
    )
    p.add_argument(
        "-l", "--layers", nargs="+", default=["all"], help="layers to probe, or 'all' (the original had no default)"
    )
    add_data(p, default=None, help_extra=" (default: the checkpoint's dataset, else cifar10)")
    p.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=64, help="batch size")
    p.add_argument("-e", "--epochs", dest="epochs", type=int, default=10, help="epochs")
    p.add_argument("-lr", "--learning-rate", dest="lr", type=finite_float, default=1e-3, help="learning rate (Adam)")
    p.add_argument(
        "-wd",
        "--weight_decay",
        "--weight-decay",
        dest="weight_decay",
        type=finite_float,
        default=0.0,
        help="weight decay (the original's default 0)",
    )
    p.add_argument("-s", "--seed", type=int, default=0, help="random seed")
    add_loader(p)
    add_device(p)
    p.add_argument(
        "-ranks",
        "--ranks",
        dest="ranks",
        nargs="*",
        default=None,
        metavar="RANK",
        help="ranks ('full' = no truncation; default full only)",
    )
    p.add_argument(
        "--verbose", action="store_true", help="print train and test accuracy of every probe after every epoch"
    )
    add_low_rank_mode(p, "fixed: one basis from the training set; per_batch: the original's SVD of every mini-batch")
    p.add_argument(
        "--token-pool",
        dest="token_pool",
        default="cls",
        choices=TOKEN_POOLS,
        help="token activations: the CLS token or the mean token",
    )
    p.add_argument(
        "--milestones",
        type=int,
        nargs="*",
        default=None,
        help="LR ×0.1 after these epochs (default e−5 when e > 5, else none)",
    )
    add_schedule(p, scheduler=True)
    add_augment(p, "the probes", no_augment="train on un-augmented images (features are then extracted once)")
    p.add_argument(
        "-o", "--out", dest="out", default=None, metavar="DIR", help="write probes.json and probes.csv into DIR"
    )
    add_bootstrap(p, "each probe's test accuracy")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_model_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..probing.model import probe_checkpoint  # deferred: torch loads only when a command computes
    from ..probing.probe import ProbeConfig

    if args.out:
        check_writable_dir(args.out)  # before the probes are trained (the folder is made when they are written)
    ranks = descending(parse_ranks(args.ranks, "-ranks"))
    bootstrap = bootstrap_spec(args)
    if args.workers < 0:
        raise StitchkitError(f"loader workers must be non-negative, got {args.workers}")
    config = ProbeConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        milestones=args.milestones,
        scheduler=args.scheduler,
        schedule_unit=args.schedule_unit,
        warmup_fraction=args.warmup_fraction,
        low_rank_mode=args.low_rank_mode,
        token_pool=args.token_pool,
        augment=args.augment,
        verbose=args.verbose,
        progress=args.progress,
        data_root=args.data_root,
        device=args.device,
        workers=args.workers,
        prefetch=args.prefetch,
    )
    report = probe_checkpoint(
        args.model_path,
        args.model_type,
        args.layers,
        ranks=ranks,
        dataset=args.dataset,
        config=config,
        model_options=model_options(args),
    )
    intervals = report.accuracy_intervals(bootstrap) if bootstrap.enabled else {}
    if args.original_output:
        print_original(report, args.model_path, ranks, intervals)
    else:
        print_table(report, args.model_path, ranks, intervals)
    info = report.info
    print(
        f"({info['path']}; {info['train_samples']} training / {info['test_samples']} test images; augmentation "
        f"{info['augmentation']}; {info['seconds']:.1f}s)"
    )
    if bootstrap.enabled:
        print(
            f"(in brackets: {100 * bootstrap.level:g}% percentile bootstrap intervals of the test accuracy, "
            f"{bootstrap.resamples} resamples of the test images, seed {bootstrap.seed})"
        )
    if args.out:
        paths = report.write(args.out)
        # the layer × rank accuracy with its bounds ("<rank> (lower)" / "(upper)" columns)
        bounds = (
            report.matrix("val_acc", bootstrap).save(Path(args.out) / "probe_accuracy.csv")
            if bootstrap.enabled
            else None
        )
        print_wrote(paths["json"], paths["csv"], bounds)
    return 0


def print_table(report, model_path: str, ranks, intervals) -> None:
    """The probes' test accuracy: one row per layer, one column per rank, each number once."""
    layers = report.layers()
    cells = {}
    for layer in layers:
        used = {r.rank: r.rank_used for r in report.results if r.layer == layer}
        for r in ranks:
            bounds = intervals.get((layer, r))
            cells[layer, r] = (
                f"{report.accuracy(layer, r):.4f}"
                + ("" if bounds is None else f" [{bounds[0]:.4f}, {bounds[1]:.4f}]")
                + ("*" if used[r] != r else "")
            )
    lead = max(len(layer) for layer in layers) + 2
    width = max([len(c) for c in cells.values()] + [len(f"rank {rank_label(r)}") for r in ranks]) + 2
    print(f"probe test accuracy of {model_path}")
    print(f"{'layer':<{lead}}" + "".join(f"{'rank ' + rank_label(r):>{width}}" for r in ranks))
    for layer in layers:
        print(f"{layer:<{lead}}" + "".join(f"{cells[layer, r]:>{width}}" for r in ranks))
    if any(c.endswith("*") for c in cells.values()):
        print("(* a rank above the layer's channels: all of them were used)")


def print_original(report, model_path: str, ranks, intervals) -> None:
    """The original's format: per layer, each rank's accuracy, then the accuracies again one per line."""
    for layer in report.layers():
        print(f"{model_path} -- {layer}")
        accs = [report.accuracy(layer, r) for r in ranks]
        used = {r.rank: r.rank_used for r in report.results if r.layer == layer}
        for r, acc in zip(ranks, accs):
            # a rank above the layer's channels is clamped: say which rank was used
            shown = r if used[r] == r else f"{r} (used {used[r]}: all of the layer's channels)"
            bounds = intervals.get((layer, r))
            print(f"Rank {shown}: {acc:.4f}" + ("" if bounds is None else f"  [{bounds[0]:.4f}, {bounds[1]:.4f}]"))
        print()
        for acc in accs:
            print(f"{acc:.4f}")
        print()
    print()
