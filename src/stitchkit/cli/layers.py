"""``stitchkit layers``: the stitchable layers of a model with their activation shapes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..choices import ALL_LAYERS, CUT_METHODS, EVERY_LAYER
from ..data import dataset_info
from ..errors import StitchkitError
from .common import add_command, add_model_options, model_options

EXAMPLES = """\
  stitchkit layers resnet18 -d fashion --width 16
  stitchkit layers vit_tiny_patch4_32 -d cifar10
  stitchkit layers runs/fashion_r18_s0/final.pt          # a checkpoint: its own architecture and dataset
  stitchkit layers torchvision:mobilenet_v3_small -d imagenet --json
"""


def register(sub) -> None:
    p = add_command(
        sub,
        "layers",
        help="list a model's stitchable layers and activation shapes",
        description="Print the stitchable layers of a model in forward order, with each one's module type and the "
        "activation shape it has for the dataset's input size. Layer names are the ones every other command takes. "
        f"Layers that are no features of their own (an activation alone, dropout, the logits) are marked: "
        f"'{ALL_LAYERS}' leaves them out, '{EVERY_LAYER}' includes them.",
        examples=EXAMPLES,
    )
    p.add_argument("model", help="architecture name or checkpoint path")
    p.add_argument(
        "-d",
        "--dataset",
        default=None,
        help="dataset whose input shape and class count to use (default cifar10, or the checkpoint's); also "
        "folder:PATH or npz:PATH",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--cut",
        default="auto",
        choices=list(CUT_METHODS),
        help="how the model is cut: torch.fx, falling back to forward hooks when it cannot trace the model (auto), or "
        "one of them",
    )
    add_model_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..models import get_model, is_known_model  # deferred: torch loads only when a command computes
    from ..models.layer_kinds import FEATURE  # deferred: torch loads only when a command computes
    from ..models.layers import layered
    from ..models.loading import load_model

    options = model_options(args)
    looks_like_path = Path(args.model).suffix in (".pt", ".pth", ".tar") or Path(args.model).exists()
    if looks_like_path and not is_known_model(args.model):
        model, ckpt = load_model(args.model, dataset=args.dataset, **options)
        info = dataset_info(args.dataset or ckpt.dataset or "cifar10")
    else:
        info = dataset_info(args.dataset or "cifar10")
        model = get_model(
            args.model,
            num_classes=info.num_classes,
            in_channels=info.shape[0],
            input_size=tuple(info.shape[1:]),
            **options,
        )
    model.eval()
    lm = layered(model, args.cut, input_shape=info.shape)
    if not lm.layers:
        raise StitchkitError(f"no stitchable layers found in {lm.model_name}")
    shapes = lm.shapes(info.shape)
    records = [
        {
            "name": n,
            "shape": list(s),
            "module_type": lm.module_types[n],
            "is_feature": lm.kinds[n] == FEATURE,
            "kind": lm.kinds[n],
        }
        for n, s in shapes.items()
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "model": lm.model_name,
                    "dataset": info.name,
                    "input_shape": list(info.shape),
                    "cut": lm.cut_method,
                    "layers": records,
                },
                indent=2,
            )
        )
        return 0
    others = [r for r in records if not r["is_feature"]]
    hooks = " (cut with forward hooks)" if lm.cut_method == "hooks" else ""
    print(
        f"{lm.model_name} on {info.name} (input {'x'.join(map(str, info.shape))}): {len(shapes)} stitchable "
        f"layers{hooks}"
        + (
            f"; '{ALL_LAYERS}' leaves out the {len(others)} marked *, which are no features of their own "
            f"(ask for them by name, or for every layer with '{EVERY_LAYER}')"
            if others
            else ""
        )
    )
    name_width = max(len(r["name"]) for r in records)
    type_width = max(len(r["module_type"]) for r in records)
    shapes_text = [" x ".join(map(str, r["shape"])) for r in records]
    shape_width = max(map(len, shapes_text))
    for i, (r, shape) in enumerate(zip(records, shapes_text)):
        mark = "" if r["is_feature"] else f"  * {r['kind']}"
        print(
            f"  {i:3d}  {r['name']:<{name_width}}  {r['module_type']:<{type_width}}  "
            f"{shape:<{shape_width}}{mark}".rstrip()
        )
    return 0
