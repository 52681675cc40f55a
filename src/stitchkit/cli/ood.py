"""``stitchkit ood``: the OOD test of stitched representations (the original's
``exec_eval_stitcher_ood.py``)."""

from __future__ import annotations

import argparse

from ..choices import DEFAULT_DETECTOR_DIR
from .common import add_bootstrap, add_command, add_device, add_loader, bootstrap_spec, print_wrote
from .detector_check import add_metric_options, training_free_options

EXAMPLES = """\
  # the original's call: a folder of stitching runs, detectors from the default registry, SVHN sanity check
  stitchkit ood results/r18_s0_s1 -d cifar10 -detectors models/repr_cls_ood_detectors -scd svhn
  # offline, with the training-free detectors next to energy, on the first 2,000 test images
  stitchkit ood runs/stitch/fashion -detectors runs/detectors -scd digits --training-free mahalanobis knn \\
      --test-samples 2000 -gpu -1
"""


def register(sub) -> None:
    p = add_command(
        sub,
        "ood",
        help="OOD test of stitched representations (AUROC/AUPR/FPR95 matrices)",
        description="For every finished stitching run in RESULTS_DIR and its end layer L: ID scores = the end layer's "
        "detector on the end network's genuine activations of the ID test set; OOD scores = the detector on the "
        "stitched activations of the evaluation test set. Prints and writes front × end matrices of accuracy, AUROC, "
        "AUPR and FPR95, and what explains them: the norm ratio of stitched to genuine activations and each detector's "
        "median scores (CSV + JSON, with both sides' score distributions) and saves the scores per run, under "
        "RESULTS_DIR/ood (or -o). Runs with different "
        "options (e.g. TLM and DM) give separate experiments. Prints the accuracy and AUROC matrices and where it "
        "wrote (every matrix, sanity check and convention with --original-output).",
        examples=EXAMPLES,
        original_output=True,
    )
    p.add_argument(
        "source_dir", help="folder whose sub-folders are stitching runs (result.json, config.json, final_model.pt)"
    )
    p.add_argument(
        "-d",
        "--dataset",
        default=None,
        help="evaluation dataset whose test split is stitched (default: the runs' dataset)",
    )
    p.add_argument("-data", "--dataset-root", dest="data_root", default=None, help="data root")
    p.add_argument(
        "-b",
        "--batch-size",
        dest="batch_size",
        type=int,
        default=256,
        help="batch size (the original's 64 is small for inference)",
    )
    add_device(p)
    p.add_argument(
        "-idd",
        "--id-dataset",
        dest="id_dataset",
        default=None,
        help="ID dataset for the genuine activations (default: -d)",
    )
    p.add_argument("-iddata", "--id-dataset-root", dest="id_root", default=None, help="its data root (default: -data)")
    p.add_argument(
        "-detectors",
        "--ood-detector-dir",
        dest="detector_dir",
        default=DEFAULT_DETECTOR_DIR,
        help="energy detector registry; 'none' for training-free detectors only",
    )
    p.add_argument(
        "-scd",
        "--sanity-check-dataset",
        dest="sanity_dataset",
        default=None,
        help="sanity-check set per layer (e.g. svhn; offline: digits)",
    )
    p.add_argument("-scdata", "--sanity-check-dataset-root", dest="sanity_root", default=None, help="its data root")
    p.add_argument(
        "-ed",
        "-o",
        "--energy-dir",
        "--out",
        dest="out",
        default=None,
        help="output folder for matrices and scores (default RESULTS_DIR/ood; scores are keyed by run)",
    )
    add_metric_options(p)
    p.add_argument(
        "--test-samples",
        dest="test_samples",
        type=int,
        default=None,
        metavar="N",
        help="first N test images of each set (default all)",
    )
    add_loader(p)
    p.set_defaults(workers=0)
    add_bootstrap(p, "AUROC, AUPR, FPR95 and the norm ratio")
    p.add_argument("--progress", action="store_true", help="progress bars")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..ood.stitched import ResultsOODSettings, evaluate_results_dir  # deferred: torch loads when a command runs

    detector_dir = None if str(args.detector_dir).lower() == "none" else args.detector_dir
    bootstrap = bootstrap_spec(args)  # before the work: a wrong level is refused at once
    settings = ResultsOODSettings(
        dataset=args.dataset,
        data_root=args.data_root,
        id_dataset=args.id_dataset,
        id_data_root=args.id_root,
        sanity_dataset=args.sanity_dataset,
        sanity_root=args.sanity_root,
        training_free=args.training_free,
        training_free_options=training_free_options(args),
        fit_samples=args.fit_samples,
        test_samples=args.test_samples,
        positive=args.positive,
        fpr_rule=args.fpr_rule,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=args.progress,
        bootstrap=bootstrap,
    )
    experiments = evaluate_results_dir(
        args.source_dir,
        settings,
        detector_dir=detector_dir,
        out_dir=args.out,
        log=print if args.original_output else _quiet,
    )  # the summary: no line per run
    if not args.original_output:
        for exp in experiments:
            print_summary(exp, args.sanity_dataset)
        return 0
    for exp in experiments:
        print()
        print(f"== {exp.label}  ({exp.out_dir})")
        print(exp.matrices.format())
        if exp.sanity:
            layers = list(exp.sanity)
            names = list(next(iter(exp.sanity.values())))
            print(f"\nOOD detector sanity checks: {args.sanity_dataset}  (layers {';'.join(layers)})")
            for name in names:
                for metric, label in (("auroc", "AUROC"), ("aupr", "AUPR"), ("fpr95", "FPR95")):
                    print(f"{name} {label}: " + ";".join(f"{exp.sanity[layer][name][metric]:.4f}" for layer in layers))
        conventions = exp.matrices.to_dict()["conventions"]
        for name, text in conventions.items():
            print(f"convention ({name}): {text}")
        if exp.matrices.interval:
            record = exp.matrices.interval
            print(
                f"intervals: {100 * record['level']:g}% percentile bootstrap of the test images, "
                f"{record['resamples']} resamples, seed {record['seed']}, "
                + (
                    "genuine and stitched resampled together (the same images)"
                    if record["paired"]
                    else "each side resampled on its own"
                )
            )
        print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in exp.seconds.items()))
    return 0


def _quiet(message: str) -> None:
    """The log of the summary: nothing (every run's numbers are in the files)."""


def print_summary(exp, sanity_dataset: str | None) -> None:
    """One experiment in a few lines: its accuracy and AUROC matrices, each detector's sanity check
    (mean over the end layers) and where it wrote."""
    print(f"== {exp.label}")
    print(exp.matrices.format(full=False))
    if exp.sanity:
        names = list(next(iter(exp.sanity.values())))
        means = {
            name: sum(exp.sanity[layer][name]["auroc"] for layer in exp.sanity) / len(exp.sanity) for name in names
        }
        print(
            f"detector sanity check (genuine ID vs {sanity_dataset}), mean AUROC over {len(exp.sanity)} end layer(s): "
            + ", ".join(f"{name} {value:.4f}" for name, value in means.items())
        )
    print(
        f"({sum(exp.seconds.values()):.1f}s; AUPR, FPR95, norm ratios, median scores and conventions in the files, "
        f"or printed with --original-output)"
    )
    print_wrote(exp.out_dir)
