"""``stitchkit detector``: train per-layer OOD detectors (the original's
``exec_train_representation_classifier.py``), sanity-check them, and list the registry.

This module registers the command and its ``list`` action; ``train`` lives in :mod:`.detector_train` and
``check`` in :mod:`.detector_check` (each with ``NAME``, ``HELP``, ``DESCRIPTION``, ``add_arguments`` and ``run``)."""

from __future__ import annotations

import argparse
import json

from ..choices import DEFAULT_DETECTOR_DIR
from . import detector_check, detector_train
from .common import HelpFormatter

EXAMPLES = """\
  # the original's call: one layer, CIFAR-5M as ID and the 300K random images as outliers
  stitchkit detector train models/r18_s0/model_100.pt resnet18 layer3.1 -m repr_cls_resnet18 -d cifar10 \\
      -ftidd cifar5m -ftoodd outlier_exposure -e 100 -fe 20 -b 512 -dir runs/det/r18_layer3.1
  # every stitchable layer of a small Fashion-MNIST ResNet in one command (one source pass per batch), offline
  stitchkit detector train runs/fashion_r18/final.pt - --layers all --width 8 -ftoodd natural_patches_gray \\
      -e 2 -fe 1 -b 128 -gpu -1 -dir runs/det/fashion_r18 -fdir runs/detectors
  # are the detectors any good? genuine test activations vs digits, next to Mahalanobis and k-NN
  stitchkit detector check runs/fashion_r18/final.pt --layers all -detectors runs/detectors -scd digits \\
      --training-free mahalanobis knn
  stitchkit detector list -fdir runs/detectors
"""


def register(sub) -> None:
    p = sub.add_parser(
        "detector",
        help="train and check per-layer OOD detectors",
        description="Per-layer OOD detectors: representation classifiers trained on a frozen network's activations "
        "and energy-fine-tuned with outlier exposure (train), their sanity check against another dataset (check), "
        "and the detector registry (list).",
        epilog="examples:\n" + EXAMPLES,
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for action in (detector_train, detector_check):
        parser = _sub(actions, action.NAME, action.HELP, action.DESCRIPTION)
        action.add_arguments(parser)
        parser.set_defaults(handler=action.run)
    _register_list(actions)


def _sub(actions, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return actions.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + EXAMPLES,
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )


def _register_list(actions) -> None:
    p = _sub(
        actions, "list", "list the detectors in a registry", "Print the detectors of a registry folder (meta.json)."
    )
    p.add_argument(
        "-fdir",
        "-detectors",
        "--final-save-dir",
        dest="final_save_dir",
        default=DEFAULT_DETECTOR_DIR,
        help="detector registry folder",
    )
    p.add_argument("--json", action="store_true", help="print meta.json")
    p.set_defaults(handler=run_list)


def run_list(args: argparse.Namespace) -> int:
    from ..ood.registry import DetectorRegistry  # deferred: the ood package imports torch

    entries = DetectorRegistry(args.final_save_dir).entries()
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print(f"no detectors in {args.final_save_dir}")
        return 0
    for key, meta in sorted(
        entries.items(), key=lambda kv: (str(kv[1].get("source_model_path")), str(kv[1].get("source_layer")))
    ):
        h = meta.get("source_model_hash") or "-"
        print(
            f"{key:<36}  {meta.get('model_type', '?'):<18} {meta.get('source_layer', '?'):<10} {h:<16} "
            f"id={meta.get('id_dataset')} ood={meta.get('ood_dataset', '?')}  {meta.get('source_model_path')}"
        )
    return 0
