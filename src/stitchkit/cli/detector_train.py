"""``stitchkit detector train``: train per-layer OOD detectors (the original's
``exec_train_representation_classifier.py``): supervised pre-training on a frozen network's activations,
then energy fine-tuning with outlier exposure. :mod:`.detector` registers it."""

from __future__ import annotations

import argparse
import json

from ..choices import DEFAULT_DETECTOR_DIR, OOD_SCORES
from ..errors import StitchkitError
from .common import (
    add_augment,
    add_device,
    add_loader,
    add_model_options,
    add_schedule,
    args_as_config,
    finite_float,
    model_options,
    percent,
    print_wrote,
)

NAME = "train"
HELP = "train OOD detectors for layers of a network"
DESCRIPTION = (
    "Train a representation classifier on the frozen source network's activations at a layer (supervised, "
    "on -d's train split), then energy-fine-tune it with outlier exposure (half -ftidd, half -ftoodd per batch). "
    "Writes training_logs.csv, model_<e>.pt, ft_logs.csv, ft_model_<e>.pt, config.txt/config.json into -dir "
    "(-dir/<layer> for several layers) and registers the detector in -fdir (<id>.pt + meta.json)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``detector train``, in the order ``--help`` lists them."""
    _add_source_options(p)
    _add_pretrain_options(p)
    _add_finetune_options(p)
    _add_schedule_and_augment_options(p)
    _add_subset_options(p)
    _add_output_options(p)


def _add_source_options(p: argparse.ArgumentParser) -> None:
    """The source network, its layers and the detector architecture."""
    p.add_argument("source_model_path", help="checkpoint of the source (end) network")
    p.add_argument("source_model_type", help="its architecture name, or - to read it from a stitchkit checkpoint")
    p.add_argument(
        "source_layer_name",
        nargs="?",
        default=None,
        help="layer to train a detector for; 'all' or a comma-separated list (or use --layers)",
    )
    p.add_argument(
        "--layers",
        nargs="+",
        default=None,
        metavar="LAYER",
        help="layers (or 'all': every stitchable layer), trained together sharing one source pass per batch",
    )
    p.add_argument(
        "-m",
        "--model-type",
        dest="model_type",
        default=None,
        help="detector architecture (default repr_cls_resnet18 for conv layers, repr_cls_vit_tiny for token layers)",
    )


def _add_pretrain_options(p: argparse.ArgumentParser) -> None:
    """The supervised pre-training: data, epochs, optimizer, output folder."""
    p.add_argument(
        "-d", "--dataset", default=None, help="pre-training dataset (default: the source checkpoint's, else cifar10)"
    )
    p.add_argument(
        "-data",
        "--dataset-root",
        dest="data_root",
        default=None,
        help="data root of -d (default $STITCHKIT_DATA or ./data)",
    )
    p.add_argument("-e", "--epochs", dest="epochs", type=int, default=100, help="supervised pre-training epochs")
    p.add_argument(
        "-b",
        "--batch-size",
        dest="batch_size",
        type=int,
        default=64,
        help="batch size (fine-tuning: half ID, half outliers)",
    )
    add_device(p)
    p.add_argument("-s", "--seed", type=int, default=0, help="random seed (the original ignored it and always used 0)")
    p.add_argument(
        "-lr", "--learning-rate", dest="lr", type=finite_float, default=1e-3, help="Adam learning rate (both phases)"
    )
    p.add_argument(
        "-wd",
        "--weight_decay",
        "--weight-decay",
        dest="weight_decay",
        type=finite_float,
        default=1e-5,
        help="Adam weight decay (L2)",
    )
    p.add_argument(
        "-rlre",
        "--reduce-lr-epochs",
        dest="milestones",
        type=int,
        nargs="*",
        default=[],
        help="pre-training: ×0.1 LR after these epochs",
    )
    p.add_argument("-dir", "--save-dir", dest="save_dir", required=True, help="output folder of the training run")
    p.add_argument(
        "-sf",
        "--save-frequency",
        dest="save_frequency",
        type=int,
        default=1,
        help="save model_<e>.pt every this many pre-training epochs",
    )


def _add_finetune_options(p: argparse.ArgumentParser) -> None:
    """The energy fine-tuning with outlier exposure, and the registry folder."""
    p.add_argument(
        "-ftidd",
        "--finetune-id-dataset",
        dest="ft_id_dataset",
        default=None,
        help="fine-tuning ID set (default: -d), e.g. cifar5m",
    )
    p.add_argument(
        "-ftiddata",
        "--finetune-id-dataset-root",
        dest="ft_id_root",
        default=None,
        help="its data root (default: -data)",
    )
    p.add_argument(
        "-ftoodd",
        "--finetune-ood-dataset",
        dest="ft_ood_dataset",
        default="outlier_exposure",
        help="auxiliary outlier set, converted to the ID input shape (offline: natural_patches / natural_patches_gray)",
    )
    p.add_argument(
        "-ftooddata",
        "--finetune-ood-dataset-root",
        dest="ft_ood_root",
        default=None,
        help="its data root (default: -data)",
    )
    p.add_argument("-fe", "--finetune-epochs", dest="ft_epochs", type=int, default=20, help="energy fine-tuning epochs")
    p.add_argument(
        "-m-in",
        "--mean-in-score",
        dest="m_in",
        type=finite_float,
        default=-25.0,
        help="energy margin for ID samples (m_in)",
    )
    p.add_argument(
        "-m-out",
        "--mean-out-score",
        dest="m_out",
        type=finite_float,
        default=-7.0,
        help="energy margin for outliers (m_out)",
    )
    p.add_argument(
        "-score",
        "--ood-score",
        dest="score",
        choices=sorted(OOD_SCORES),
        default="energy",
        help="fine-tuning regulariser",
    )
    p.add_argument(
        "-fdir",
        "--final-save-dir",
        dest="final_save_dir",
        default=DEFAULT_DETECTOR_DIR,
        help="detector registry folder",
    )
    p.add_argument(
        "--ft-lr-per-batch",
        dest="ft_lr_per_batch",
        action="store_true",
        help="parity: step the fine-tuning ×0.1 decay per batch like the original (LR drops after fe//2 iterations)",
    )


def _add_schedule_and_augment_options(p: argparse.ArgumentParser) -> None:
    """The LR schedule of both phases and the augmentation."""
    schedule = p.add_argument_group(
        "LR schedule of both phases (the default none: ×0.1 at -rlre in pre-training, after fe//2 epochs in "
        "fine-tuning)"
    )
    add_schedule(schedule, scheduler=True)
    add_augment(p, "the detectors (pre-training and the fine-tuning's ID half)")
    p.add_argument(
        "--ft-id-augment",
        dest="ft_id_augment",
        action="store_const",
        const=True,
        default=None,
        help="augment the fine-tuning ID samples with their set's default augmentation whatever --augment says "
        "(the original did for sets other than cifar5m)",
    )
    p.add_argument(
        "--no-ft-id-augment",
        dest="ft_id_augment",
        action="store_const",
        const=False,
        help="the fine-tuning ID samples un-augmented whatever --augment says (with --augment dataset: what every run "
        "did before --augment existed)",
    )


def _add_subset_options(p: argparse.ArgumentParser) -> None:
    """Quick runs: subsets of the training, fine-tuning and validation images."""
    p.add_argument(
        "--train-subset",
        dest="train_subset",
        type=int,
        default=None,
        metavar="N",
        help="pre-train on a fixed random subset of N images",
    )
    p.add_argument(
        "--ft-samples",
        dest="ft_samples",
        type=int,
        default=None,
        metavar="N",
        help="fine-tuning samples per epoch from each side (default min(|ID|, |OOD|))",
    )
    p.add_argument(
        "--val-subset",
        dest="val_subset",
        type=int,
        default=None,
        metavar="N",
        help="validate on the first N test images (0: no validation)",
    )


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """Registration, overwriting, printing, the loader and the source network's architecture options."""
    p.add_argument("--no-register", dest="register", action="store_false", help="do not add the detectors to -fdir")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="train into a -dir that already holds finished detectors (they are replaced)",
    )
    p.add_argument("--json", action="store_true", help="print one line of JSON per detector instead of the summary")
    add_loader(p)
    p.set_defaults(workers=0)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_model_options(p)


def _layers_arg(args: argparse.Namespace) -> list[str]:
    parts = ([args.source_layer_name] if args.source_layer_name else []) + list(args.layers or [])
    if not any(part.strip(", ") for part in parts):
        raise StitchkitError(
            "give the layer to train a detector for (positional source_layer_name, or --layers LAYER ... / --layers "
            "all)"
        )
    return parts


def run(args: argparse.Namespace) -> int:
    from ..ood.train import (  # deferred: torch loads only when a command computes
        DetectorTrainConfig,
        train_detectors_for_checkpoint,
    )

    config = DetectorTrainConfig(
        save_dir=args.save_dir,
        model_type=args.model_type,
        model_options=model_options(args),
        dataset=args.dataset,
        data_root=args.data_root,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        lr=args.lr,
        weight_decay=args.weight_decay,
        reduce_lr_epochs=list(args.milestones),
        save_frequency=args.save_frequency,
        ft_id_dataset=args.ft_id_dataset,
        ft_id_root=args.ft_id_root,
        ft_ood_dataset=args.ft_ood_dataset,
        ft_ood_root=args.ft_ood_root,
        ft_epochs=args.ft_epochs,
        m_in=args.m_in,
        m_out=args.m_out,
        score=args.score,
        ft_lr_per_batch=args.ft_lr_per_batch,
        scheduler=args.scheduler,
        schedule_unit=args.schedule_unit,
        warmup_fraction=args.warmup_fraction,
        augment=args.augment,
        ft_id_augment=args.ft_id_augment,
        train_subset=args.train_subset,
        ft_samples=args.ft_samples,
        val_subset=args.val_subset,
        final_save_dir=args.final_save_dir,
        register=args.register,
        overwrite=args.overwrite,
        device=args.device,
        workers=args.workers,
        prefetch=args.prefetch,
        progress=args.progress,
    )
    trained = train_detectors_for_checkpoint(
        args.source_model_path, args.source_model_type, _layers_arg(args), config, argv_config=args_as_config(args)
    )
    for t in trained:
        m = t.meta["metrics"]
        seconds = round(m["pretrain_seconds"] + m["finetune_seconds"], 1)
        if args.json:
            print(
                json.dumps(
                    {
                        "layer": t.layer,
                        "detector_id": t.detector_id,
                        "save_dir": t.save_dir,
                        "pretrain_val_acc": m["pretrain_val_acc"],
                        "finetune_val_acc": m["finetune_val_acc"],
                        "seconds": seconds,
                    }
                )
            )
        else:
            print(
                f"{t.layer}: detector {t.detector_id}, validation accuracy {percent(m['pretrain_val_acc'])} "
                f"pre-trained, {percent(m['finetune_val_acc'])} fine-tuned ({seconds:.1f}s)"
            )
            print_wrote(t.save_dir)
    return 0
