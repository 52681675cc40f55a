"""``stitchkit detector check``: sanity-check OOD detectors on a network's genuine activations (ID test
set vs another dataset), and the training-free detectors' options it shares with ``stitchkit ood``.
:mod:`.detector` registers it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..choices import DEFAULT_DETECTOR_DIR, FPR_RULES, POSITIVE_CLASSES
from ..declarations import DeclarationError, catalogue, names
from ..errors import StitchkitError
from ..utils.io import check_writable_dir, write_json_atomic
from .common import add_device, finite_float, print_wrote

NAME = "check"
HELP = "sanity-check detectors: genuine ID test activations vs another dataset"
DESCRIPTION = (
    "For each layer, score the network's genuine activations of the ID test set and of a sanity-check set (the "
    "original's -scd, e.g. SVHN; offline: digits) with the layer's energy detector from -detectors and/or "
    "training-free detectors, and report AUROC, AUPR and FPR95."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``detector check``, in the order ``--help`` lists them."""
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


def run(args: argparse.Namespace) -> int:
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
