"""``stitchkit sensitivity`` and ``stitchkit specificity``: test similarity measures against probe
accuracy (Ding et al. 2021, as adapted by Balogh & Jelasity 2025); see :mod:`stitchkit.sensitivity`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..choices import ALL_LAYERS, DEFAULT_GROUNDING_MEASURES, DEFAULT_POLICY, EVERY_LAYER, POLICIES
from ..declarations import names
from ..errors import StitchkitError
from ..ranks import parse_ranks
from ..utils.io import check_writable_dir
from .common import (
    add_augment,
    add_command,
    add_data,
    add_device,
    add_loader,
    add_low_rank_mode,
    add_model_options,
    finite_float,
    model_options,
)

SENSITIVITY_EXAMPLES = """\
  # three seeds, one layer, candidates at decreasing ranks; tables and figure in results/sens
  stitchkit sensitivity runs/r18_s0/final.pt runs/r18_s1/final.pt runs/r18_s2/final.pt -l layer3.1 \\
      -ranks 32 16 8 4 2 1 -o results/sens
  # with direct-matching accuracy too (stitches every candidate into every reference on 1000 test images)
  stitchkit sensitivity runs/r18_s*/final.pt -l layer2.1 layer4.1 -ranks 16 4 1 \\
      --measures cka pwcca procrustes dm_residual dm_accuracy
  # reuse probe accuracies across runs
  stitchkit sensitivity runs/r18_s*/final.pt -l layer3.1 -ranks 8 2 --probe-cache results/probes.json --no-augment
"""

SPECIFICITY_EXAMPLES = """\
  # every layer of three seeds against each layer in turn
  stitchkit specificity runs/r18_s0/final.pt runs/r18_s1/final.pt runs/r18_s2/final.pt -o results/spec
  # one reference layer, all layers as candidates, probe results shared with a sensitivity run
  stitchkit specificity runs/r18_s*/final.pt --reference-layers layer3.1 --probe-cache results/probes.json --no-augment
"""


def _common(p: argparse.ArgumentParser, test: str) -> None:
    """The options of both tests (``test`` names their output files), in the order ``--help`` lists them."""
    _add_network_arguments(p)
    _add_measure_options(p)
    add_data(p, default=None, help_extra=" (default: the checkpoints' dataset)")
    _add_probe_options(p)
    _add_stitching_options(p)
    add_loader(p)
    add_device(p)
    p.add_argument(
        "-o",
        "--out",
        dest="out",
        default=f"results/{test}",
        metavar="DIR",
        help=f"output folder for {test}_stats.csv, {test}_points.csv, {test}.json and {test}.png",
    )
    p.add_argument("--no-figure", dest="figure", action="store_false", help="do not draw the figure")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("--quiet", dest="verbose", action="store_false", help="print only the tables")
    add_model_options(p)


def _add_network_arguments(p: argparse.ArgumentParser) -> None:
    """The networks to test: their checkpoints, architecture and short names."""
    p.add_argument(
        "checkpoints", nargs="+", help="checkpoints of the networks (e.g. several seeds of one architecture)"
    )
    p.add_argument(
        "--model-type", dest="model_type", default=None, help="architecture, needed only for plain state_dict files"
    )
    p.add_argument("--names", nargs="+", default=None, help="a short name per checkpoint (default: the folder names)")


def _add_measure_options(p: argparse.ArgumentParser) -> None:
    """The measures tested and how the array measures see the activations."""
    choices = list(names("measure"))
    p.add_argument(
        "--measures",
        nargs="+",
        default=list(DEFAULT_GROUNDING_MEASURES),
        choices=choices,
        metavar="MEASURE",
        help=f"measures to test; choose from {', '.join(choices)} (dm_accuracy and tlm_accuracy stitch networks)",
    )
    p.add_argument(
        "--n-samples", dest="n_samples", type=int, default=1000, help="the first N test images for the array measures"
    )
    p.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        choices=POLICIES,
        help="activation policy of the array measures (the same for every comparison; auto_original: the original's, "
        "positions or pooled by shape)",
    )
    add_low_rank_mode(
        p, "probes (and stitches): a fixed basis from the training set, or the original's per-batch SVD (per_batch)"
    )


def _add_probe_options(p: argparse.ArgumentParser) -> None:
    """The probes, whose accuracy is the functional score."""
    g = p.add_argument_group("probes (the functional score; defaults are the original's exec_probe.py)")
    g.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=64, help="probe batch size")
    g.add_argument("-e", "--epochs", dest="epochs", type=int, default=10, help="probe epochs")
    g.add_argument("-lr", "--learning-rate", dest="lr", type=finite_float, default=1e-3, help="probe learning rate")
    g.add_argument(
        "-wd", "--weight-decay", dest="weight_decay", type=finite_float, default=0.0, help="probe weight decay"
    )
    g.add_argument("-s", "--seed", type=int, default=0, help="probe seed")
    add_augment(
        g,
        "the probes and task loss matching (tlm_accuracy)",
        no_augment="train probes and task loss matching without augmentation (probe features extracted once: much "
        "faster)",
    )
    g.add_argument(
        "--probe-train-subset",
        dest="probe_train_subset",
        type=int,
        default=None,
        metavar="N",
        help="probes train on a fixed random subset of N training images (default: all)",
    )
    g.add_argument(
        "--probe-cache",
        dest="probe_cache",
        default=None,
        metavar="FILE",
        help="JSON file of probe accuracies to reuse and extend (default: <out>/probes.json)",
    )


def _add_stitching_options(p: argparse.ArgumentParser) -> None:
    """The stitching measures' settings (dm_accuracy, tlm_accuracy)."""
    s = p.add_argument_group("stitching measures (dm_accuracy, tlm_accuracy)")
    s.add_argument(
        "--stitch-test-samples",
        dest="stitch_test_samples",
        type=int,
        default=1000,
        help="test images for the stitched accuracy (0: all)",
    )
    s.add_argument(
        "--stitch-fit-samples",
        dest="stitch_fit_samples",
        type=int,
        default=100,
        help="K training images of direct matching",
    )
    s.add_argument(
        "--tlm-epochs", dest="tlm_epochs", type=int, default=30, help="epochs of task loss matching (the paper: 30)"
    )
    s.add_argument(
        "--tlm-lr",
        dest="tlm_lr",
        type=finite_float,
        default=1e-3,
        help="Adam learning rate of task loss matching (the paper: 1e-3)",
    )
    s.add_argument(
        "--tlm-batch-size",
        dest="tlm_batch_size",
        type=int,
        default=256,
        help="batch size of task loss matching (the paper: 256)",
    )
    s.add_argument(
        "--tlm-train-samples",
        dest="tlm_train_samples",
        type=int,
        default=None,
        metavar="N",
        help="task loss matching trains on a fixed random subset of N training images (default: all)",
    )


def register(sub) -> None:
    p = add_command(
        sub,
        "sensitivity",
        help="sensitivity test: do measures react to low-rank versions of a layer as probe accuracy does?",
        description="For each layer: every network's full-rank layer is a reference; the candidates are that layer of "
        "every network at every rank (and full rank). Each measure's dissimilarity (candidate → reference) is ranked "
        "against the "
        "functional difference |Δ probe accuracy|: Spearman ρ, Kendall τ, one-sided p-values, fraction of badly "
        "ordered pairs.",
        examples=SENSITIVITY_EXAMPLES,
    )
    _common(p, "sensitivity")
    p.add_argument("-l", "--layers", nargs="+", required=True, help="layer(s) to test (one test group each)")
    p.add_argument(
        "-ranks",
        "--ranks",
        dest="ranks",
        nargs="+",
        required=True,
        metavar="RANK",
        help="candidate ranks, e.g. 32 16 8 4 2 1",
    )
    p.set_defaults(handler=run, test="sensitivity")

    q = add_command(
        sub,
        "specificity",
        help="specificity test: do measures tell layers and seeds apart only as much as probe accuracy does?",
        description="For each reference layer: every network's reference layer (full rank) is a reference; the "
        "candidates "
        "are every layer of every network. Each measure's dissimilarity is ranked against |Δ probe accuracy| as in the "
        "sensitivity test.",
        examples=SPECIFICITY_EXAMPLES,
    )
    _common(q, "specificity")
    q.add_argument("-l", "--layers", nargs="+", default=["all"], help="candidate layers, or 'all'")
    q.add_argument(
        "--reference-layers",
        dest="reference_layers",
        nargs="+",
        default=None,
        help="reference layers (default: each candidate layer in turn)",
    )
    q.set_defaults(handler=run, test="specificity")


def run(args: argparse.Namespace) -> int:
    from ..probing.probe import ProbeConfig  # deferred: torch loads only when a command computes
    from ..sensitivity.run import grounding_test_checkpoints
    from ..sensitivity.settings import GroundingSettings
    from ..similarity.registry import measure_info

    if args.n_samples < 3:
        raise StitchkitError(f"--n-samples must be at least 3, got {args.n_samples}")
    for flag, value in (
        ("--stitch-test-samples", args.stitch_test_samples),
        ("--stitch-fit-samples", args.stitch_fit_samples),
    ):
        if value < 0:
            raise StitchkitError(f"{flag} must be non-negative, got {value}")
    probe = ProbeConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        low_rank_mode=args.low_rank_mode,
        augment=args.augment,
        train_subset=args.probe_train_subset,
        progress=args.progress,
    )
    settings = GroundingSettings(
        measures=[measure_info(m).name for m in dict.fromkeys(args.measures)],
        n_samples=args.n_samples,
        policy=args.policy,
        low_rank_mode=args.low_rank_mode,
        probe=probe,
        probe_cache=args.probe_cache or str(Path(args.out) / "probes.json"),
        stitch_test_samples=args.stitch_test_samples or None,
        stitch_fit_samples=args.stitch_fit_samples,
        tlm_epochs=args.tlm_epochs,
        tlm_lr=args.tlm_lr,
        tlm_batch_size=args.tlm_batch_size,
        tlm_train_samples=args.tlm_train_samples,
        tlm_augment=args.augment,
        device=args.device,
        workers=args.workers,
        prefetch=args.prefetch,
        progress=args.progress,
        verbose=args.verbose,
        data_root=args.data_root,
    )
    kwargs = {}
    if args.test == "sensitivity":
        ranks = [r for r in parse_ranks(args.ranks, "-ranks") if r is not None]
        if not ranks:
            raise StitchkitError("-ranks needs at least one rank below full, e.g. -ranks 32 16 8 4 2 1")
        kwargs.update(layers=args.layers, ranks=ranks)
        if args.layers in (None, [ALL_LAYERS], [EVERY_LAYER]):
            raise StitchkitError("give the layer(s) to test with -l (the sensitivity test is per layer)")
    else:
        kwargs.update(layers=args.layers, reference_layers=args.reference_layers)
    check_writable_dir(args.out)  # fail before the long part (created when the first file is written)
    report = grounding_test_checkpoints(
        args.test,
        args.checkpoints,
        model_type=args.model_type,
        dataset=args.dataset,
        names=args.names,
        model_options=model_options(args),
        settings=settings,
        **kwargs,
    )
    groups = list(dict.fromkeys(p["group"] for p in report.points))
    n_refs = len({p["reference"] for p in report.points})
    print(
        f"{args.test} test on {report.info['dataset']}: {len(report.info['networks'])} network(s), layers "
        f"{', '.join(report.info['layers'])}"
        + (f", ranks {' '.join(report.info['ranks'])}" if args.test == "sensitivity" else "")
        + f"; {n_refs} reference(s), {len(report.points) // max(1, len(report.measures()))} pairs per measure"
    )
    for group in groups + (["all"] if len(groups) > 1 else []):
        print(f"\n[{group}]")
        print(report.table(group))
    paths = report.write(args.out, figure=args.figure)
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0
