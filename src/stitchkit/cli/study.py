"""``stitchkit study``: run a whole comparison from one config, resumably."""

from __future__ import annotations

import argparse
import json

from ..errors import StitchkitError
from ..study import run_study, study_status  # torch-free (units import torch when they run)
from ..study.config import describe_schema
from .common import add_command

EXAMPLES = """\
  stitchkit study examples/demo.toml                      # run (or continue) the study
  stitchkit study examples/demo.toml --status             # what is done, running, failed and left
  # each claim of the paper: supported, not supported or not testable
  stitchkit study examples/demo.toml --findings
  stitchkit study examples/demo.toml --executor pool --workers 2
  stitchkit study examples/paper_cifar10_resnet18.toml --executor ray --address ray://head:10001 \\
      --out /shared/studies/c10
  stitchkit study examples/demo.toml --rerun similarity   # recompute one kind of unit
  stitchkit study --schema                                # every config key with its default
"""


def register(sub) -> None:
    p = add_command(
        sub,
        "study",
        help="run a whole study from one config (resumable)",
        description="Plan a study config into units of work (train networks, fit stitches, train detectors, compute "
        "measures, run tests), run those not done yet in dependency order, and store every result in "
        "<study folder>/study.sqlite. Interrupt it at any time and run the same command again to continue.",
        examples=EXAMPLES,
    )
    p.add_argument("config", nargs="?", help="study config (.toml, or .yaml with PyYAML)")
    p.add_argument("--out", default=None, help="study folder (default runs/study-<name>)")
    show = p.add_mutually_exclusive_group()
    show.add_argument("--status", action="store_true", help="print what is done, running, failed and left, and exit")
    show.add_argument(
        "--findings",
        action="store_true",
        help="print the findings (each claim's verdict, from the results stored so far and the config's [findings] "
        "thresholds) and exit; runs and writes nothing",
    )
    p.add_argument("--executor", default="inline", choices=["inline", "pool", "ray"], help="where units run")
    p.add_argument("--workers", type=int, default=2, help="processes of the pool executor (CPUs for a local Ray)")
    p.add_argument("--address", default=None, help="address of a running Ray cluster (ray executor)")
    p.add_argument(
        "--rerun", action="append", default=[], metavar="KIND", help="recompute every unit of this kind (repeatable)"
    )
    p.add_argument("--no-report", dest="report", action="store_false", help="do not write the report at the end")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress display")
    p.add_argument("--schema", action="store_true", help="print every config key with its default and exit")
    p.add_argument("--json", action="store_true", help="end with the run's summary as one line of JSON (for scripts)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.schema:
        print(describe_schema())
        return 0
    if not args.config:
        raise StitchkitError("give a study config (e.g. examples/demo.toml), or --schema to see the keys")
    if args.findings:
        from ..study.findings import render_text, study_findings  # deferred: numpy loads only when a study is read

        findings, config = study_findings(args.config, args.out)
        print(render_text(findings, config["study"]["name"]))
        return 0
    if args.status:
        status = study_status(args.config, args.out)
        print(
            f"study folder: {status['study_dir']} — {status['units']} units: "
            + ", ".join(f"{n} {s}" for s, n in status["totals"].items())
        )
        for kind, counts in status["by_kind"].items():
            print(f"  {kind:<12} " + "  ".join(f"{s} {n}" for s, n in counts.items()))
        for f in status["failed"]:
            print(f"  failed: {f['unit']}: {f['error']}")
        if status["totals"].get("interrupted"):
            print(
                f"  {status['totals']['interrupted']} unit(s) were interrupted: no driver is running; run the study "
                f"again to continue"
            )
        return 0
    summary = run_study(
        args.config,
        args.out,
        executor=args.executor,
        workers=args.workers,
        address=args.address,
        rerun=args.rerun,
        progress=args.progress,
    )
    counts = summary.counts
    print(
        f"study finished in {summary.seconds:.0f}s: {counts['done']} done, {counts['failed']} failed ({summary.ran} "
        f"ran now)"
    )
    if summary.seconds_by_kind:
        print(
            "time by unit kind: "
            + ", ".join(
                f"{kind} {sec:.0f}s" for kind, sec in sorted(summary.seconds_by_kind.items(), key=lambda kv: -kv[1])
            )
        )
    print(f"study folder: {summary.study_dir}")
    if args.report:
        from ..study.report import write_report  # deferred: numpy and matplotlib load only for the report

        print(f"report: {write_report(summary.study_dir)}")
    if args.json:
        print(json.dumps(summary.to_dict()))
    return 1 if counts["failed"] else 0
