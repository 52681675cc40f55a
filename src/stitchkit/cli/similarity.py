"""``stitchkit similarity``: CKA / PWCCA / Procrustes (and any other array measure) at several ranks
(the original's ``exec_compute_low_rank_sim_metrics.py``), for one layer pair, matching layer lists or
all pairs (an L × L matrix per measure and rank pair).

The positional arguments are the original's. Each network's activations are extracted once (one pass
of its prefix over the first ``--n-samples`` test images) and reused for every rank, measure and pair.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from ..choices import ALL_LAYERS, DEFAULT_POLICY, DEFAULT_SIMILARITY_MEASURES, EVERY_LAYER, POLICIES, array_measures
from ..errors import StitchkitError
from ..ranks import descending, parse_ranks, rank_label
from ..utils.io import check_writable_dir
from .common import (
    add_command,
    add_data,
    add_device,
    add_loader,
    add_low_rank_mode,
    add_model_options,
    finite_float,
    model_options,
    print_wrote,
)

EXAMPLES = """\
  # the original's call: two seeds, one layer pair, model 1 truncated to several ranks
  stitchkit similarity runs/r18_s0/final.pt runs/r18_s1/final.pt resnet18 resnet18 layer3.1 layer3.1 \\
      -m1r 64 32 16 8 -d fashion
  # all 8 x 8 layer pairs of two networks (types read from stitchkit checkpoints), written to files
  stitchkit similarity runs/r18_s0/final.pt runs/r18_s1/final.pt - - all all \\
      --measures cka pwcca procrustes dm_residual -o results/sim_s0_s1
  stitchkit similarity a.pt b.pt - - --all-pairs --policy pool --n-samples 2000
  # a network with itself: one extraction, the symmetric measures on one triangle
  stitchkit similarity runs/r18_s0/final.pt runs/r18_s0/final.pt - - all all --measures cka cka_debiased
"""

#: the original's printed names
LABELS = {"cka": "CKA:", "pwcca": "CCA:", "procrustes": "Orth. Procr:"}


def every_layer(text: str | None) -> bool:
    """Whether a layer argument asks for every layer (``all``, ``every``, or nothing)."""
    return text is None or text.strip() in (ALL_LAYERS, EVERY_LAYER, "")


def register(sub) -> None:
    p = add_command(
        sub,
        "similarity",
        help="similarity indices (CKA, PWCCA, Procrustes, ...) between layers at several ranks",
        description="Compute similarity measures between model1_layer of model 1 and model2_layer of model 2 on the "
        "first "
        "--n-samples test images, for every rank of -m1r and -m2r (centred truncated SVD over the whole sample set). "
        "Layers may be lists or 'all'; --all-pairs compares every layer of model 1 with every layer of model 2. "
        "Prints one table "
        "of the layer pairs (the original's format with --original-output), or one matrix per measure and rank pair "
        "in all-pairs mode, "
        "and, with -o, writes similarity.json and similarity.csv. Every cell is computed by one --policy (default "
        "pool); the original's auto_original mixes positions and pooling by shape, and a matrix it mixes is marked.",
        examples=EXAMPLES,
        original_output=True,
    )
    _add_network_arguments(p)
    add_data(p, default=None, help_extra=" (default: the checkpoints' dataset, else cifar10)")
    add_loader(p)
    add_device(p)
    _add_measure_options(p)
    _add_cache_options(p)
    p.add_argument(
        "-o", "--out", dest="out", default=None, metavar="DIR", help="write similarity.json and similarity.csv into DIR"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    _add_uncertainty_options(p)
    add_model_options(p)
    p.set_defaults(handler=run)


def _add_network_arguments(p: argparse.ArgumentParser) -> None:
    """The two networks, their layers and the ranks of each layer's activation."""
    p.add_argument("model1_path", help="checkpoint of model 1")
    p.add_argument("model2_path", help="checkpoint of model 2 (may be the same file)")
    p.add_argument("model1_type", help="architecture of model 1, or - / auto for a stitchkit checkpoint")
    p.add_argument("model2_type", help="architecture of model 2, or - / auto")
    p.add_argument("model1_layer", nargs="?", default=None, help="layer of model 1, a comma-separated list or 'all'")
    p.add_argument("model2_layer", nargs="?", default=None, help="layer of model 2, a comma-separated list or 'all'")
    p.add_argument(
        "-m1r",
        "--model1-ranks",
        dest="ranks1",
        nargs="+",
        default=None,
        metavar="RANK",
        help="ranks of model 1's activation ('full' = no truncation; default full)",
    )
    p.add_argument(
        "-m2r",
        "--model2-ranks",
        dest="ranks2",
        nargs="+",
        default=None,
        metavar="RANK",
        help="ranks of model 2's activation (default full)",
    )


def _add_measure_options(p: argparse.ArgumentParser) -> None:
    """What is computed: the measures, images, activation policy, pairs, batch size, split."""
    p.add_argument(
        "--measures",
        nargs="+",
        default=list(DEFAULT_SIMILARITY_MEASURES),
        choices=array_measures(),
        metavar="MEASURE",
        help=f"measures to compute; choose from {', '.join(array_measures())}",
    )
    p.add_argument(
        "--n-samples", dest="n_samples", type=int, default=1000, help="the first N test images (the original: 1000)"
    )
    p.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        choices=POLICIES,
        help="how activations become data matrices, the same for every pair; auto_original (the original's numbers "
        "for a "
        "single pair): flatten for CKA, positions (same shapes) or pooled (other shapes) for PWCCA/Procrustes, so a "
        "matrix mixes them",
    )
    add_low_rank_mode(p, "recorded with the results; on the whole sample set both modes truncate identically")
    p.add_argument(
        "--all-pairs",
        dest="all_pairs",
        action="store_true",
        help="every layer of model 1 with every layer of model 2 (default: all of each)",
    )
    p.add_argument(
        "-b",
        "--batch-size",
        dest="batch_size",
        type=int,
        default=64,
        help="batch size of the extraction pass (no effect on the values)",
    )
    p.add_argument(
        "--split", default="test", choices=["test", "train"], help="which split the first N images come from"
    )


def _add_cache_options(p: argparse.ArgumentParser) -> None:
    """The activation cache shared with ``stitchkit stitch``."""
    p.add_argument(
        "--cache-dir",
        "--activation-cache",
        dest="cache_dir",
        default=None,
        help="keep extracted activations here (content-addressed by network and sample set) for later runs "
        "(default $XDG_CACHE_HOME/stitchkit/activations, i.e. ~/.cache/..., shared with `stitchkit stitch`)",
    )
    p.add_argument("--no-cache", dest="use_cache", action="store_false", help="extract without the activation cache")
    p.add_argument(
        "--cache-limit-gb",
        dest="cache_limit_gb",
        type=finite_float,
        default=4.0,
        help="largest size of that cache (least recently used go first)",
    )


def _add_uncertainty_options(p: argparse.ArgumentParser) -> None:
    """Bootstrap intervals and permutation tests of every value."""
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="B",
        help="bootstrap resamples of the images: a percentile interval for every value (0 = off, the default)",
    )
    p.add_argument(
        "--permutations",
        type=int,
        default=0,
        metavar="P",
        help="permutations of model 2's images against model 1's: a p-value and a null-calibrated score for every "
        "value (0 = off)",
    )
    p.add_argument("--level", type=finite_float, default=0.95, help="the intervals' confidence level")
    p.add_argument(
        "--uncertainty-seed",
        dest="uncertainty_seed",
        type=int,
        default=0,
        help="seed of the resamples and permutations (recorded)",
    )


def _fmt(v: float, digits: int = 6) -> str:
    return "nan" if math.isnan(v) else f"{v:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    from ..similarity.models import compare_checkpoints  # deferred: torch loads only when a command computes
    from ..similarity.registry import measure_info
    from ..similarity.settings import CheckpointOptions, SimilaritySettings

    ranks1, ranks2 = descending(parse_ranks(args.ranks1, "-m1r")), descending(parse_ranks(args.ranks2, "-m2r"))
    if args.n_samples < 2:
        raise StitchkitError(f"--n-samples must be at least 2, got {args.n_samples}")
    for flag, value in (("--bootstrap", args.bootstrap), ("--permutations", args.permutations)):
        if value < 0:
            raise StitchkitError(f"{flag} takes a number of resamples, 0 for none, got {value}")
    if not 0 < args.level < 1:
        raise StitchkitError(f"--level is a confidence level between 0 and 1, got {args.level}")
    if args.model1_layer is None and not args.all_pairs:
        raise StitchkitError(
            "give model1_layer and model2_layer (names, comma-separated lists or 'all'), or --all-pairs"
        )
    # 'all' on either side, or --all-pairs: every layer of model 1 against every layer of model 2
    all_pairs = args.all_pairs or every_layer(args.model1_layer) or every_layer(args.model2_layer)
    measures = [measure_info(m).name for m in dict.fromkeys(args.measures)]
    from ..activations import ActivationCache  # deferred: torch loads only when a command computes
    from ..data.sources import user_cache_dir

    cache_dir = (args.cache_dir or str(user_cache_dir() / "activations")) if args.use_cache else None
    if cache_dir:
        check_writable_dir(cache_dir, "activation cache folder (--cache-dir)")
    if args.out:
        check_writable_dir(args.out)
    settings = SimilaritySettings(
        measures=measures,
        n_samples=args.n_samples,
        ranks_x=ranks1,
        ranks_y=ranks2,
        all_pairs=all_pairs,
        policy=args.policy,
        low_rank_mode=args.low_rank_mode,
        bootstrap=args.bootstrap,
        permutations=args.permutations,
        level=args.level,
        uncertainty_seed=args.uncertainty_seed,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        prefetch=args.prefetch,
        cache_dir=cache_dir,
        progress=args.progress,
        data_root=args.data_root,
    )
    report = compare_checkpoints(
        args.model1_path,
        args.model2_path,
        args.model1_type,
        args.model2_type,
        args.model1_layer,
        args.model2_layer,
        options=CheckpointOptions(dataset=args.dataset, split=args.split, model_options=model_options(args)),
        settings=settings,
    )
    if cache_dir:
        ActivationCache(cache_dir).trim(args.cache_limit_gb * 2**30)
    if all_pairs:
        print_matrices(report, measures, ranks1, ranks2)
    elif args.original_output:
        print_original(report, args.model1_path, args.model2_path, measures, ranks1, ranks2)
    else:
        print_pairs(report, measures)
    info = report.info
    print(
        f"({info['n_samples']} samples, policy {info['policy']}; extraction {info['extraction_seconds']:.1f}s, "
        f"measures {info['measure_seconds']:.1f}s)"
    )
    if args.out:
        paths = report.write(args.out)
        print_wrote(paths["json"], paths["csv"])
    return 0


def print_pairs(report, measures: Sequence[str]) -> None:
    """One line per layer pair and rank pair, one column per measure (each number once)."""
    values = {(r.x.layer, r.y.layer, r.x.rank, r.y.rank, r.result.measure): r.value for r in report.results}
    rows = list(dict.fromkeys((r.x.layer, r.y.layer, r.x.rank, r.y.rank) for r in report.results))
    used = {(r.x.layer, r.y.layer, r.x.rank, r.y.rank): (r.rank_used_x, r.rank_used_y) for r in report.results}
    pair_width = max(len(f"{a} -- {b}") for a, b, _, _ in rows)
    width = max([len(m) for m in measures] + [8]) + 2
    print(f"{'layer pair':<{pair_width}}  {'rank 1':>7} {'rank 2':>7}" + "".join(f"{m:>{width}}" for m in measures))
    for key in rows:
        a, b, r1, r2 = key
        shown = [rank_label(r) + ("*" if u != r else "") for r, u in zip((r1, r2), used[key])]
        print(
            f"{f'{a} -- {b}':<{pair_width}}  {shown[0]:>7} {shown[1]:>7}"
            + "".join(f"{_fmt(values[(*key, m)], 4):>{width}}" for m in measures)
        )
    if any(u != r for key in rows for r, u in zip(key[2:], used[key])):
        print("(* a rank above the layer's channels: all of them were used)")


def print_original(report, path1: str, path2: str, measures: Sequence[str], ranks1, ranks2) -> None:
    """The original's layout: per layer pair and model-1 rank, each measure's values over model-2 ranks."""
    values = {(r.x.layer, r.y.layer, r.x.rank, r.y.rank, r.result.measure): r.value for r in report.results}
    used = {(r.x.layer, r.y.layer, r.x.rank, r.y.rank): (r.rank_used_x, r.rank_used_y) for r in report.results}
    pairs = list(dict.fromkeys((r.x.layer, r.y.layer) for r in report.results))

    def shown(asked, really) -> str:  # a rank above the layer's channels is clamped: say which rank was used
        return f"{asked}" if asked == really else f"{asked} (used {really}: all of the layer's channels)"

    for l1, l2 in pairs:
        for r1 in ranks1:
            print(f"{path1} -- {path2}")
            print(f"{l1} -- {l2}")
            for m in measures:
                print(LABELS.get(m, f"{m}:"))
                print(f"Model1 rank {shown(r1, used[(l1, l2, r1, ranks2[0])][0])}:")
                row = [values[(l1, l2, r1, r2, m)] for r2 in ranks2]
                for r2, v in zip(ranks2, row):
                    print(f"\tModel2 rank {shown(r2, used[(l1, l2, r1, r2)][1])}: {_fmt(v)}")
                print()
                for v in row:
                    print(_fmt(v))
            print("\n")


def print_matrices(report, measures: Sequence[str], ranks1, ranks2) -> None:
    """One matrix per measure and rank pair: rows are model 1's layers, columns model 2's."""
    from ..similarity.pairs import result_matrix  # deferred: torch loads only when a command computes
    from ..similarity.registry import measure_info

    mixed = report.mixed_policies
    for r1 in ranks1:
        for r2 in ranks2:
            for m in measures:
                matrix, rows, cols = result_matrix(report.results, m, rank_x=r1, rank_y=r2)
                kind = measure_info(m).kind
                how = f"MIXED policies: {' and '.join(mixed[m])}" if m in mixed else f"policy {report.info['policy']}"
                print(
                    f"{m} ({kind}; {how}), model 1 rank {rank_label(r1)} (rows) vs model 2 rank {rank_label(r2)} "
                    f"(columns)"
                )
                width = max([len(c) for c in cols] + [8]) + 1
                lead = max(len(r) for r in rows) + 2
                print(" " * lead + "".join(f"{c:>{width}}" for c in cols))
                for name, line in zip(rows, matrix):
                    print(f"{name:<{lead}}" + "".join(f"{_fmt(v)[: width - 1]:>{width}}" for v in line))
                print()
                print_uncertainty(report, m, r1, r2, rows, lead, width)


def print_uncertainty(report, measure: str, r1, r2, rows: Sequence[str], lead: int, width: int) -> None:
    """Below a matrix, when computed: its interval bounds and permutation p-values, in the same layout."""
    from ..similarity.pairs import result_matrix  # deferred: torch loads only when a command computes

    sure = report.info.get("uncertainty") or {}
    shown = ([("lower", "lower bound"), ("upper", "upper bound")] if sure.get("resamples") else []) + (
        [("p_value", "permutation p-value")] if sure.get("permutations") else []
    )
    for field, label in shown:
        grid = result_matrix(report.results, measure, rank_x=r1, rank_y=r2, field=field)[0]
        extra = (
            f" of the {sure['level']:.0%} interval ({sure['resamples']} resamples)"
            if field != "p_value"
            else f" ({sure['permutations']} permutations)"
        )
        print(f"  {measure} {label}{extra}")
        for name, line in zip(rows, grid):
            print(f"{name:<{lead}}" + "".join(f"{_fmt(v)[: width - 1]:>{width}}" for v in line))
        print()
