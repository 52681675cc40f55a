"""``stitchkit collect``: front × end matrices from a folder of stitch runs (the original's
``exec_collect_results.py``, reading ``result.json`` instead of parsing ``summary.txt``)."""

from __future__ import annotations

import argparse
import json

from ..choices import COLLECT_METRICS
from .common import add_bootstrap, add_command

EXAMPLES = """\
  stitchkit collect results/dm_s0_s1                   # writes accuracy.csv, residual.csv, ... and matrices.json there
  stitchkit collect results/dm_s0_s1 -o tables/dm      # somewhere else
  stitchkit collect results/mixed --print residual     # print another matrix (one folder may hold several experiments)
"""


def register(sub) -> None:
    p = add_command(
        sub,
        "collect",
        help="build front x end matrices from stitch results",
        description="Read every result.json under RESULTS_DIR, group the runs by experiment (models, dataset and "
        "options) and build front x end matrices of accuracy, residual (pooled), residual_batch_mean and fit_residual, "
        "rows and columns in the networks' layer order, NaN for missing pairs. Writes one CSV per metric and "
        "matrices.json (missing pairs as null) and prints the tables.",
        examples=EXAMPLES,
    )
    p.add_argument("results_dir", help="a folder of stitch runs (e.g. results/<-dir>)")
    p.add_argument("-o", "--out", dest="out", default=None, help="output folder (default: RESULTS_DIR)")
    p.add_argument(
        "--print",
        dest="print_metrics",
        nargs="*",
        choices=list(COLLECT_METRICS),
        default=["accuracy"],
        help="matrices to print",
    )
    p.add_argument(
        "--all-layers",
        dest="all_layers",
        action="store_true",
        help="rows and columns for every stitchable layer, not only those run",
    )
    p.add_argument(
        "--json", dest="json_out", action="store_true", help="print matrices.json's content instead of tables"
    )
    add_bootstrap(
        p,
        "the accuracy and residual matrices (written as <metric>.lower.csv / .upper.csv and in matrices.json), "
        "from each run's per_sample.npz",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..stitching.collect import (  # deferred: torch loads only when a command computes
        collect_results,
        write_collected,
    )

    groups = collect_results(
        args.results_dir,
        all_layers=args.all_layers,
        bootstrap=args.bootstrap,
        level=args.level,
        seed=args.bootstrap_seed,
    )
    written = write_collected(groups, args.out or args.results_dir)
    if args.json_out:
        print(json.dumps({"groups": [g.to_dict() for g in groups]}, indent=2))
        return 0
    for g in groups:
        missing = int(sum(v != v for v in g.metrics["accuracy"].ravel()))
        print(f"== {g.label}: {g.n_runs} run(s), {missing} missing pair(s)")
        for metric in args.print_metrics:
            print(f"{metric}:")
            print(g.table(metric))
            for side, values in zip(("lower", "upper"), g.bounds.get(metric, ())):
                print(
                    f"{metric}, {side} bound of the {100 * g.interval['level']:g}% interval "
                    f"({g.interval['resamples']} resamples):"
                )
                print(g.table(metric, values=values))
    print(f"wrote {len(written)} files, e.g. {written[0]}")
    return 0
