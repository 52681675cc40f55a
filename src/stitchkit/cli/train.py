"""``stitchkit train``: train a base model (the original's ``exec_train.py`` and, with
``--preset imagenet`` under torchrun, its ``misc/imagenet_train_main.py``)."""

from __future__ import annotations

import argparse
import json
import os

from ..choices import OPTIMIZERS, SCHEDULERS
from .common import (
    add_command,
    add_data,
    add_data_path,
    add_device,
    add_loader,
    add_model_options,
    add_schedule,
    add_weights,
    args_as_config,
    finite_float,
    model_options,
    percent,
    print_wrote,
    schedulers_help,
)

# The original's exec_train.py defaults, then the ImageNet recipe of spec 1.10 (PyTorch's reference).
DEFAULTS = dict(
    dataset="cifar10",
    optimizer="adam",
    batch_size=64,
    epochs=100,
    lr=1e-3,
    weight_decay=1e-5,
    momentum=0.0,
    scheduler="none",
    step_size=30,
    amp=False,
)
PRESETS = {
    "imagenet": dict(
        dataset="imagenet",
        optimizer="sgd",
        batch_size=256,
        epochs=90,
        lr=None,
        weight_decay=1e-4,
        momentum=0.9,
        scheduler="step",
        step_size=30,
        amp=True,
    ),
}

EXAMPLES = """\
  # a small CIFAR-style ResNet-18 on Fashion-MNIST, on the CPU
  stitchkit train resnet18 -d fashion --width 16 -e 3 -b 128 -gpu -1 -dir runs/fashion_r18_s0
  # the original's CIFAR-10 recipe
  stitchkit train resnet18 -d cifar10 -e 100 -b 64 -lr 1e-3 -dir models/r18_s0 -s 0
  # your own arrays (x_train, y_train, x_test, y_test in an .npz)
  stitchkit train small_cnn -d npz:data/mine.npz --width 8 -e 5 -dir runs/mine_s0
  # a torchvision model from local pretrained weights (no download), fine-tuned on your image folders at 64x64
  stitchkit train torchvision:resnet18 --weights resnet18-f37072fd.pth -d folder:data/pets@64x64 -e 3 -dir runs/pets_r18
  # continue an interrupted run
  stitchkit train resnet18 -d fashion --width 16 -e 5 -dir runs/fashion_r18_s0 --resume runs/fashion_r18_s0/last.pt
  # ImageNet on 8 GPUs (SGD 0.1 per 256 images, momentum 0.9, wd 1e-4, ×0.1 every 30 epochs, 90 epochs, AMP)
  torchrun --nproc_per_node 8 -m stitchkit train tv_resnet18 --preset imagenet -data /data/imagenet -workers 8 \\
      -dir runs/in_r18
"""


def register(sub) -> None:
    p = add_command(
        sub,
        "train",
        help="train a base model",
        description="Train a base classifier. Writes model_<epoch>.pt, "
        "training_logs.csv, config.txt/config.json, last.pt (for --resume) and final.pt into -dir, and prints the "
        "test accuracy and where it wrote (the original's `Clean accuracy` and a JSON line with --original-output).",
        examples=EXAMPLES,
        original_output=True,
    )
    p.add_argument("model_type", help="architecture name (see `stitchkit models`)")
    add_device(p)
    add_data(p, default=None, help_extra=" (default cifar10)")
    _add_optimizer_options(p)
    _add_lr_schedule_options(p)
    add_loader(p)
    add_data_path(p)
    _add_run_options(p)
    _add_subset_and_switch_options(p)
    add_model_options(p)
    add_weights(p)
    p.set_defaults(handler=run)


def _add_optimizer_options(p: argparse.ArgumentParser) -> None:
    """The optimizer, batch size, epochs and seed (None: the defaults or the --preset's)."""
    p.add_argument(
        "-o",
        "--optimizer",
        default=None,
        choices=OPTIMIZERS,
        help="optimizer (default adam; Adam's weight decay is L2 like the original)",
    )
    p.add_argument(
        "-b", "--batch-size", dest="batch_size", type=int, default=None, help="batch size per process (default 64)"
    )
    p.add_argument("-e", "--epochs", dest="epochs", type=int, default=None, help="epochs (default 100)")
    p.add_argument(
        "-lr",
        "--learning-rate",
        dest="lr",
        type=finite_float,
        default=None,
        help="learning rate (default 1e-3; ImageNet preset 0.1 per 256 images)",
    )
    p.add_argument(
        "-wd",
        "--weight_decay",
        "--weight-decay",
        dest="weight_decay",
        type=finite_float,
        default=None,
        help="weight decay (default 1e-5)",
    )
    p.add_argument(
        "--momentum",
        type=finite_float,
        default=None,
        help="SGD momentum (default 0 like the original; ImageNet preset 0.9)",
    )
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD)")
    p.add_argument("-s", "--seed", type=int, default=0, help="random seed")


def _add_lr_schedule_options(p: argparse.ArgumentParser) -> None:
    """The learning-rate schedule and gradient clipping."""
    p.add_argument(
        "-sched", "--lr-scheduler", dest="scheduler", default=None, choices=sorted(SCHEDULERS), help=schedulers_help()
    )
    p.add_argument(
        "-rlre",
        "--reduce-lr-epochs",
        dest="milestones",
        type=int,
        nargs="*",
        default=[],
        help="multiply the LR by --gamma after these epochs",
    )
    p.add_argument("--gamma", type=finite_float, default=0.1, help="LR decay factor of -rlre and the step schedule")
    p.add_argument(
        "--step-size",
        dest="step_size",
        type=int,
        default=None,
        help="epochs between decays of the step schedule (default 30)",
    )
    p.add_argument(
        "--warmup-epochs",
        dest="warmup_epochs",
        type=int,
        default=0,
        help="linear LR warm-up epochs of a per-epoch schedule",
    )
    add_schedule(p)
    p.add_argument(
        "--grad-clip",
        dest="grad_clip",
        type=finite_float,
        default=None,
        help="clip the global L2 gradient norm to this value",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The output folder, the recipe (--amp, --preset), resuming and overwriting."""
    p.add_argument("-dir", "--save-dir", dest="save_dir", required=True, help="output folder")
    p.add_argument(
        "-sf",
        "--save-frequency",
        dest="save_frequency",
        type=int,
        default=1,
        help="save model_<epoch>.pt every this many epochs",
    )
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mixed precision on CUDA (default off; on with the ImageNet preset)",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="a named recipe whose values replace the defaults (explicit flags still win)",
    )
    p.add_argument(
        "--resume", default=None, metavar="CHECKPOINT", help="continue from a last.pt checkpoint of this run"
    )
    p.add_argument(
        "--force-resume",
        dest="force_resume",
        action="store_true",
        help="resume even from a checkpoint whose model, dataset, seed or recipe differ from this run's (recorded in "
        "config.json)",
    )
    p.add_argument("--overwrite", action="store_true", help="train into a folder that already holds a run")


def _add_subset_and_switch_options(p: argparse.ArgumentParser) -> None:
    """A training subset for quick runs, and the augmentation, download and progress switches."""
    p.add_argument(
        "--train-subset",
        dest="train_subset",
        type=int,
        default=None,
        metavar="N",
        help="train on a fixed random subset of N images (quick runs)",
    )
    p.add_argument(
        "--no-augment", dest="augment", action="store_false", help="train without the dataset's default augmentation"
    )
    p.add_argument(
        "--no-download", dest="download", action="store_false", help="never try to download a missing dataset"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def resolve(args: argparse.Namespace) -> dict:
    """Explicit flags, then the preset, then the original's defaults."""
    values = dict(DEFAULTS)
    if args.preset:
        values.update({k: v for k, v in PRESETS[args.preset].items() if v is not None})
    for key in DEFAULTS:
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    if args.preset == "imagenet" and args.lr is None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        values["lr"] = 0.1 * values["batch_size"] * world / 256  # linear scaling rule, per 256 images
    return values


def run(args: argparse.Namespace) -> int:
    from ..training.base import TrainSettings, train_model  # deferred: torch loads only when a command computes
    from ..training.distributed import launched_by_torchrun
    from ..training.optim import OptimConfig

    v = resolve(args)
    settings = TrainSettings(
        model=args.model_type,
        save_dir=args.save_dir,
        dataset=v["dataset"],
        data_root=args.data_root,
        epochs=v["epochs"],
        batch_size=v["batch_size"],
        optim=OptimConfig(
            optimizer=v["optimizer"],
            lr=v["lr"],
            weight_decay=v["weight_decay"],
            momentum=v["momentum"],
            nesterov=args.nesterov,
            scheduler=v["scheduler"],
            milestones=list(args.milestones),
            gamma=args.gamma,
            step_size=v["step_size"],
            warmup_epochs=args.warmup_epochs,
            schedule_unit=args.schedule_unit,
            warmup_fraction=args.warmup_fraction,
        ),
        seed=args.seed,
        grad_clip=args.grad_clip,
        workers=args.workers,
        prefetch=args.prefetch,
        save_frequency=args.save_frequency,
        device=args.device,
        amp=v["amp"],
        resume=args.resume,
        force_resume=args.force_resume,
        overwrite=args.overwrite,
        model_options=model_options(args),
        train_subset=args.train_subset,
        augment=args.augment,
        download=args.download,
        progress=args.progress,
        data_path=args.data_path,
    )
    config = args_as_config(args)
    config.update(v)
    result = train_model(settings, argv_config=config)
    if not launched_by_torchrun() or int(__import__("os").environ.get("RANK", "0")) == 0:
        m = result["metrics"]
        if args.original_output:
            print(f"Clean accuracy: {100 * m['test_acc']:.2f}%")
            print(json.dumps({"final": result["final"], "test_acc": m["test_acc"], "seconds": round(m["seconds"], 1)}))
        else:
            print(
                f"trained {args.model_type} on {v['dataset']} for {v['epochs']} epoch(s) in {m['seconds']:.1f}s: "
                f"test accuracy {percent(m['test_acc'])}"
            )
            print_wrote(result["final"])
    return 0
