"""``stitchkit eval``: clean accuracy of a base model (the original's ``exec_eval.py``)."""

from __future__ import annotations

import argparse

from ..utils.io import write_json_atomic
from .common import (
    add_command,
    add_data,
    add_device,
    add_loader,
    add_model_options,
    model_options,
    percent,
    print_wrote,
)

EXAMPLES = """\
  stitchkit eval runs/fashion_r18_s0/final.pt               # a stitchkit checkpoint describes itself
  stitchkit eval runs/fashion_r18_s0/model_3.pt             # so does model_<e>.pt inside a stitchkit run folder
  stitchkit eval models/test/model_5.pt resnet18 -d cifar10 # a plain state_dict of the original needs the model name
"""


def register(sub) -> None:
    p = add_command(
        sub,
        "eval",
        help="clean test accuracy of a model",
        description="Evaluate a checkpoint on a dataset's test split "
        "and print its accuracy (the original's `Clean accuracy: XX.XX%%` with --original-output; top-5 and loss with "
        "--json).",
        examples=EXAMPLES,
        original_output=True,
    )
    p.add_argument("model_path", help="checkpoint (.pt)")
    p.add_argument(
        "model_type", nargs="?", default=None, help="architecture name; needed only for plain state_dict files"
    )
    add_data(p, default=None, help_extra=" (default: the checkpoint's dataset, else cifar10)")
    p.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=64, help="batch size")
    add_device(p)
    add_loader(p)
    p.add_argument(
        "--json", dest="json_out", default=None, metavar="FILE", help="also write the numbers to FILE as JSON"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_model_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..training.base import evaluate_model  # deferred: torch loads only when a command computes
    from ..utils.run_options import RunOptions

    run_options = RunOptions(
        data_root=args.data_root,
        device=args.device,
        workers=args.workers,
        prefetch=args.prefetch,
        progress=args.progress,
    )
    result = evaluate_model(
        args.model_path,
        args.model_type,
        run_options,
        dataset=args.dataset,
        batch_size=args.batch_size,
        model_options=model_options(args),
    )
    if args.original_output:
        print(f"Clean accuracy: {100 * result['acc']:.2f}%")  # first, as the original's exec_eval.py printed it
        if "top5" in result:
            print(f"Top-5 accuracy: {100 * result['top5']:.2f}%")
        print(f"Evaluated on: {result['dataset']} (test split, {result['n']} images)")
    else:
        top5 = f", top-5 {percent(result['top5'])}" if "top5" in result else ""
        print(
            f"{result['model_name']} ({result['model']}) on {result['dataset']} test ({result['n']} images): "
            f"accuracy {percent(result['acc'])}{top5}"
        )
    if args.json_out:
        write_json_atomic(args.json_out, result)
        if not args.original_output:
            print_wrote(args.json_out)
    return 0
