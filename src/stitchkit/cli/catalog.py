"""``stitchkit models`` and ``stitchkit datasets``: what the registries hold."""

from __future__ import annotations

import argparse

from ..data import dataset_info, list_datasets, resolve_data_root
from ..data.catalog import OWN_DATA, SIZED
from ..models.catalog import describe_models
from .common import add_command


def register(sub) -> None:
    p = add_command(
        sub,
        "models",
        help="list the registered architectures",
        description="List every registered architecture by family, with its options.",
        examples="  stitchkit models\n  stitchkit layers resnet18 -d fashion --width 8   # then look inside one\n",
    )
    p.set_defaults(handler=run_models)
    p = add_command(
        sub,
        "datasets",
        help="list the registered datasets and whether they are on disk",
        description="List every registered dataset with its classes, input shape and where its files are expected.",
        examples="  stitchkit datasets\n  stitchkit datasets -data /data\n"
        "  stitchkit train small_cnn -d npz:mine.npz -e 5 -dir runs/mine    # your own arrays\n"
        "  stitchkit layers resnet18 -d folder:images@64x64                  # your own image folders, resized\n",
    )
    p.add_argument("-data", "--dataset-root", "--data", dest="data_root", default=None, help="data root to report on")
    p.set_defaults(handler=run_datasets)


def run_models(args: argparse.Namespace) -> int:
    print(describe_models())
    return 0


def run_datasets(args: argparse.Namespace) -> int:
    print(f"data root: {resolve_data_root(args.data_root)}")
    rows = [dataset_info(name) for name in list_datasets()]
    width = max(len(i.name) for i in rows)
    for info in rows:
        aliases = f" (also {', '.join(info.aliases)})" if info.aliases else ""
        shape = "x".join(map(str, info.shape))
        print(f"  {info.name:<{width}}  {info.num_classes:>4} classes  {shape:>9}  {info.description}{aliases}")
        print(f"  {'':<{width}}  files: {info.expected_files}")
    print(
        f"{SIZED[0].upper()}{SIZED[1:]}; and {OWN_DATA}, e.g. -d npz:mine.npz or -d folder:images@32x32 "
        f"(docs/tutorials/own-data.md)"
    )
    return 0
