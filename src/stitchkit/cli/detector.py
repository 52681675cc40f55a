"""``stitchkit detector``: train per-layer OOD detectors (the original's
``exec_train_representation_classifier.py``), sanity-check them, and list the registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..choices import DEFAULT_DETECTOR_DIR, FPR_RULES, OOD_SCORES, POSITIVE_CLASSES
from ..declarations import DeclarationError, catalogue, names
from ..errors import StitchkitError
from ..utils.io import check_writable_dir, write_json_atomic
from .common import (
    HelpFormatter,
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
    _register_train(actions)
    _register_check(actions)
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


def _register_train(actions) -> None:
    p = _sub(
        actions,
        "train",
        "train OOD detectors for layers of a network",
        "Train a representation classifier on the frozen source network's activations at a layer (supervised, "
        "on -d's train split), then energy-fine-tune it with outlier exposure (half -ftidd, half -ftoodd per batch). "
        "Writes training_logs.csv, model_<e>.pt, ft_logs.csv, ft_model_<e>.pt, config.txt/config.json into -dir "
        "(-dir/<layer> for several layers) and registers the detector in -fdir (<id>.pt + meta.json).",
    )
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
    p.set_defaults(handler=run_train)


def _layers_arg(args: argparse.Namespace) -> list[str]:
    parts = ([args.source_layer_name] if args.source_layer_name else []) + list(args.layers or [])
    if not any(part.strip(", ") for part in parts):
        raise StitchkitError(
            "give the layer to train a detector for (positional source_layer_name, or --layers LAYER ... / --layers "
            "all)"
        )
    return parts


def run_train(args: argparse.Namespace) -> int:
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


def _register_check(actions) -> None:
    p = _sub(
        actions,
        "check",
        "sanity-check detectors: genuine ID test activations vs another dataset",
        "For each layer, score the network's genuine activations of the ID test set and of a sanity-check set (the "
        "original's -scd, e.g. SVHN; offline: digits) with the layer's energy detector from -detectors and/or "
        "training-free detectors, and report AUROC, AUPR and FPR95.",
    )
    p.add_argument("model_path", help="checkpoint of the network whose layers the detectors watch")
    p.add_argument(
        "model_type",
        nargs="?",
        default=None,
        help="architecture name for a plain state_dict (default: from the checkpoint)",
    )
    p.add_argument(
        "--layers", nargs="+", default=["all"], metavar="LAYER", help="layers to check ('all': every stitchable layer)"
    )
    p.add_argument(
        "-detectors",
        "--ood-detector-dir",
        dest="detector_dir",
        default=None,
        help=f"energy detector registry (e.g. {DEFAULT_DETECTOR_DIR}); omit for training-free detectors only",
    )
    p.add_argument("-idd", "--id-dataset", dest="dataset", default=None, help="ID dataset (default: the checkpoint's)")
    p.add_argument("-iddata", "--id-dataset-root", "-data", dest="data_root", default=None, help="its data root")
    p.add_argument(
        "-scd",
        "--sanity-check-dataset",
        dest="sanity_dataset",
        default="digits",
        help="the other dataset (converted to the ID input shape)",
    )
    p.add_argument("-scdata", "--sanity-check-dataset-root", dest="sanity_root", default=None, help="its data root")
    add_metric_options(p)
    p.add_argument(
        "--id-samples",
        dest="id_samples",
        type=int,
        default=None,
        metavar="N",
        help="first N ID test images (default all)",
    )
    p.add_argument(
        "--sanity-samples",
        dest="sanity_samples",
        type=int,
        default=None,
        metavar="N",
        help="first N sanity test images (default all)",
    )
    p.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=256, help="batch size")
    add_device(p)
    p.add_argument("-o", "--out", dest="out", default=None, help="write the report as JSON here")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--progress", action="store_true", help="progress bars")
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars (the default here; accepted like elsewhere)",
    )
    p.set_defaults(handler=run_check)


#: the types a training-free detector's declared option may have on the command line
_OPTION_TYPES = {"int": int, "float": finite_float, "str": str}


def training_free_option_flags() -> dict[str, dict]:
    """Every command-line flag of the training-free detectors' declared ``options``, with its spec; detectors
    that offer the same flag (``--pool``) must declare it alike."""
    flags: dict[str, dict] = {}
    for name in names("detector", trains=False):
        for spec in catalogue("detector")[name].get("options", {}).values():
            if flags.setdefault(spec["flag"], spec) != spec:
                raise DeclarationError(
                    f"detector {name!r} declares {spec['flag']} unlike another detector: "
                    f"{spec} and {flags[spec['flag']]}"
                )
    return flags


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_metric_options(p: argparse.ArgumentParser) -> None:
    """The training-free detectors (their names and declared options) and the metrics' conventions."""
    free = names("detector", trains=False)
    described = "; ".join(f"{n}: {catalogue('detector')[n].get('help', '')}" for n in free).replace("%", "%%")
    p.add_argument(
        "--training-free",
        dest="training_free",
        nargs="*",
        default=[],
        choices=list(free),
        help=f"also fit these training-free detectors on the ID train split ({described})",
    )
    p.add_argument(
        "--fit-samples",
        dest="fit_samples",
        type=int,
        default=10_000,
        metavar="N",
        help="ID train images the training-free detectors are fitted on",
    )
    for flag, spec in training_free_option_flags().items():
        p.add_argument(
            flag,
            dest=_dest(flag),
            type=_OPTION_TYPES[spec.get("type", "str")],
            default=spec["default"],
            choices=spec.get("choices"),
            help=spec["help"].replace("%", "%%"),
        )
    p.add_argument(
        "--positive",
        choices=sorted(POSITIVE_CLASSES),
        default="id",
        help="positive class of AUPR and FPR95: id (the original's, score −energy) or ood (OpenOOD's)",
    )
    p.add_argument(
        "--fpr-rule",
        dest="fpr_rule",
        choices=sorted(FPR_RULES),
        default="closest",
        help="how the 95%% TPR threshold is picked",
    )


def training_free_options(args: argparse.Namespace) -> dict:
    """Each training-free detector's declared options, as the command line set them; a value below an
    option's declared ``min`` is refused."""
    for flag, spec in training_free_option_flags().items():
        value = getattr(args, _dest(flag))
        if "min" in spec and value is not None and value < spec["min"]:
            raise StitchkitError(f"{flag} must be at least {spec['min']}, got {value}")
    declared = catalogue("detector")
    return {
        name: {option: getattr(args, _dest(spec["flag"])) for option, spec in declared[name].get("options", {}).items()}
        for name in names("detector", trains=False)
    }


def run_check(args: argparse.Namespace) -> int:
    from ..data.provenance import note_provenance
    from ..models.layers import layered
    from ..models.loading import check_model_type, load_for_dataset
    from ..ood.evaluate import DetectorCheckSettings, check_detectors  # deferred: torch loads only when a command runs
    from ..ood.registry import DetectorRegistry  # deferred: the ood package imports torch
    from ..utils.device import resolve_device

    options = training_free_options(args)  # its checks first, as before the model loads
    for flag, value in (
        ("batch size (-b)", args.batch_size),
        ("--fit-samples", args.fit_samples),
        ("--id-samples", args.id_samples),
        ("--sanity-samples", args.sanity_samples),
    ):
        if value is not None and value < 1:
            raise StitchkitError(f"{flag} must be at least 1, got {value}")
    if not args.detector_dir and not args.training_free:
        raise StitchkitError(
            "nothing to check: give an energy detector registry (-detectors DIR) and/or --training-free mahalanobis knn"
        )
    if args.out:
        check_writable_dir(Path(args.out).parent, "folder of -o")  # before the long part
    check_model_type(args.model_path, args.model_type)
    model, ckpt, info = load_for_dataset(args.model_path, args.model_type, dataset=args.dataset)
    dataset = info.name
    provenance = note_provenance({"": ckpt.dataset}, dataset)
    layers = layered(model).resolve(args.layers)
    settings = DetectorCheckSettings(
        sanity_dataset=args.sanity_dataset,
        training_free=args.training_free,
        training_free_options=options,
        fit_samples=args.fit_samples,
        id_samples=args.id_samples,
        sanity_samples=args.sanity_samples,
        data_root=args.data_root,
        sanity_root=args.sanity_root,
        positive=args.positive,
        fpr_rule=args.fpr_rule,
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        progress=args.progress,
    )
    registry = DetectorRegistry(args.detector_dir) if args.detector_dir else None
    report = check_detectors(model, layers, settings, id_dataset=dataset, registry=registry, model_path=args.model_path)
    report.conventions.update(provenance)
    if args.out:
        write_json_atomic(args.out, report.to_dict())
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"OOD detector sanity checks: {dataset} test (ID) vs {args.sanity_dataset} test, model {args.model_path}")
        print(report.table())
        print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))
        print_wrote(args.out)
    return 0


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
