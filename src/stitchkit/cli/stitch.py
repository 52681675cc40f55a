"""``stitchkit stitch``: stitch one layer pair or a whole layer grid (the original's ``exec_stitch.py``).

The positional arguments are the original's. The two layer arguments also take a comma-separated list
or ``all`` (a grid, run in one process); ``--front-layers``/``--end-layers`` are the same, spelled as
flags (then give ``-`` positionally). The model types may be ``-`` or ``auto`` for stitchkit checkpoints,
which describe their own architecture; the original's plain state_dicts need the name.
Its option groups live in :mod:`.stitch_options`; this module registers the command and runs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..declarations import catalogue
from ..errors import StitchkitError
from .common import (
    add_bootstrap,
    add_command,
    add_data,
    add_device,
    add_loader,
    add_model_options,
    model_options,
    percent,
    print_wrote,
)
from .stitch_options import (
    add_grid_options,
    add_matching_options,
    add_output_options,
    add_speed_options,
    add_training_options,
)

EXAMPLES = """\
  # the original's README example (direct matching of layer4.1 onto layer1.0 from 100 training images)
  stitchkit stitch models/test/model_5.pt models/test2/model_5.pt resnet18 resnet18 layer4.1 layer1.0 rc2c_pre \\
      -d cifar10 -e 0 -b 512 -i pinv --mod-only-stitch
  # task loss matching (30 epochs of Adam by default) between two stitchkit checkpoints, types read from the files
  stitchkit stitch runs/r18_s0/final.pt runs/r18_s1/final.pt - - layer2.1 layer2.1 auto -dir tlm_s0_s1
  # the whole 8x8 direct-matching grid in one process; re-running it skips finished pairs
  stitchkit stitch runs/r18_s0/final.pt runs/r18_s1/final.pt - - all all rc2c_pre -e 0 -i pinv -dir dm_s0_s1
  stitchkit collect results/dm_s0_s1
  # a low-rank source (fixed basis from the fit images; --low-rank-mode per_batch is the original's)
  stitchkit stitch a.pt b.pt - - layer3.1 layer3.1 rc2c_pre -e 0 -i pinv --front-pinv-rank 8 --front-stitch-rank 8
  # task loss matching on the dataset's flip+crop even though the end network was trained without it
  # (default: as it was trained)
  stitchkit stitch a.pt b.pt - - layer2.1 layer2.1 auto --augment dataset
  # the original's numbers: its float32 pinv with torch's default cutoff on the K = 100 fit images in one batch
  stitchkit stitch a.pt b.pt - - layer4.1 layer1.0 rc2c_pre -e 0 -i pinv --dm-solver original
"""


_PARSER: argparse.ArgumentParser | None = None


def _rebuild_command(args: argparse.Namespace) -> str:
    """An equivalent command line: the positionals, then every option whose value is not its default."""
    words = ["stitchkit", "stitch"]
    options = []
    for action in _PARSER._actions if _PARSER is not None else []:
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            words.append(str(value))
        elif action.dest != "help" and value != action.default:
            flag = action.option_strings[0]
            if action.nargs == 0:
                options.append(flag)
            elif isinstance(value, list):
                options.append(" ".join([flag, *map(str, value)]))
            else:
                options.append(f"{flag} {value}")
    return " ".join(words + options)


def register(sub) -> None:
    global _PARSER
    p = add_command(
        sub,
        "stitch",
        help="stitch a layer pair or a layer grid (direct matching / task loss matching)",
        description="Stitch front_layer of the front model to end_layer of the end model with a stitching layer "
        "fitted by "
        "direct matching (-i pinv -e 0), task loss matching (-e > 0), or both (-i pinv -e > 0). Each pair writes "
        "results/<-dir>/<run name>/ with summary.txt (the original's format), config.txt, config.json, final_model.pt "
        "(the stitching layer's state_dict), training_logs.csv (when trained), result.json and per_sample.npz (each "
        "test image's hit and residual terms, for --bootstrap intervals). Finished runs are skipped, "
        "never overwritten, unless --overwrite. A single pair prints its accuracy, its relative accuracy (stitched / "
        "end network) and its run folder (the original's `Clean accuracy` line with --original-output).",
        examples=EXAMPLES,
        original_output=True,
    )
    p.add_argument("front_model_path", help="front model checkpoint")
    p.add_argument("end_model_path", help="end model checkpoint")
    p.add_argument("front_model_type", help="front architecture, or - / auto for a stitchkit checkpoint")
    p.add_argument("end_model_type", help="end architecture, or - / auto for a stitchkit checkpoint")
    p.add_argument(
        "front_layer",
        help="front layer, a comma-separated list or 'all' (see `stitchkit layers`); - with --front-layers",
    )
    p.add_argument("end_layer", help="end layer, a comma-separated list or 'all'; - with --end-layers")
    types = catalogue("stitching_layer")
    p.add_argument(
        "stitching_type",
        choices=list(types),
        help=(
            "stitching layer type: " + "; ".join(f"{name}: {decl.get('help', '')}" for name, decl in types.items())
        ).replace("%", "%%"),
    )
    add_device(p)
    add_data(p, default=None, help_extra=" (default: the checkpoints' dataset, else cifar10)")
    add_training_options(p)
    add_loader(p)
    add_output_options(p)
    add_matching_options(p)
    add_grid_options(p)
    add_speed_options(p)
    add_bootstrap(
        p,
        "each pair's accuracy, residual and relative accuracy (accuracy / the end network's); no pair runs again and "
        "no run name changes",
    )
    p.add_argument(
        "--no-download", dest="download", action="store_false", help="never try to download a missing dataset"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("--quiet", dest="verbose", action="store_false", help="print only the final line of each pair")
    add_model_options(p)
    p.set_defaults(handler=run)
    _PARSER = p


def _layers(positional: str, flag: str | None, which: str) -> str:
    if flag is None:
        if positional == "-":
            raise StitchkitError(
                f"the {which} layer is '-'; give --{which}-layers, or a layer name, a list or 'all' positionally"
            )
        return positional
    if positional not in ("-", flag):
        raise StitchkitError(
            f"give the {which} layers either positionally ({positional!r}) or with --{which}-layers ({flag!r}), not "
            f"both"
        )
    return flag


def settings_from_args(args: argparse.Namespace):
    from ..data.sources import user_cache_dir  # deferred: torch loads only when a command computes
    from ..stitching.settings import StitchSettings
    from ..training.optim import OptimConfig

    return StitchSettings(
        stitching_type=args.stitching_type,
        init=args.init,
        epochs=args.n_epochs,
        batch_size=args.batch_size,
        optim=OptimConfig(
            optimizer=args.optimizer,
            lr=args.learning_rate,
            weight_decay=args.weight_decay,
            scheduler=args.lr_scheduler,
            milestones=list(args.reduce_lr_epochs),
            schedule_unit=args.schedule_unit,
            warmup_fraction=args.warmup_fraction,
        ),
        seed=args.seed,
        fit_samples=args.n_pinv_init_samples or None,
        test_samples=args.test_samples,
        train_samples=args.train_subset,
        l1=args.l1_coef,
        grad_clip=args.grad_clip,
        upsample_mode=args.upsample_mode,
        c2t_cls=args.c2t_cls_token,
        t2c_cls=args.t2c_cls_token,
        front_stitch_rank=args.front_stitch_rank,
        front_pinv_rank=args.front_pinv_rank,
        low_rank_mode=args.low_rank_mode,
        dm_solver=args.dm_solver,
        augment=args.augment,
        dataset=args.dataset,
        data_root=args.data_root,
        download=args.download,
        device=args.device,
        workers=args.workers,
        prefetch=args.prefetch,
        save_weights=not args.no_save,
        overwrite=args.overwrite,
        cache_dir=args.cache_dir,
        memory_limit_gb=args.memory_limit_gb,
        progress=args.progress,
        verbose=args.verbose,
        grouping=args.grouping,
        group_size=args.group_size,
        data_path=args.data_path,
        amp=args.amp,
        channels_last=args.channels_last,
        fold_batchnorm=args.fold_batchnorm,
        compile=args.compile,
        activation_cache=(args.activation_cache or str(user_cache_dir() / "activations"))
        if args.use_activation_cache
        else None,
        cache_limit_gb=args.cache_limit_gb,
        bootstrap=args.bootstrap,
        bootstrap_level=args.level,
        bootstrap_seed=args.bootstrap_seed,
    )


def run(args: argparse.Namespace) -> int:
    from ..stitching.grid import GridOptions, stitch_grid  # deferred: torch loads only when a command computes
    from ..stitching.intervals import describe_ci

    if args.n_pinv_init_samples < 0:
        raise StitchkitError(
            f"-pinv-samples must be 0 (the whole training split) or more, got {args.n_pinv_init_samples}"
        )
    front_layers = _layers(args.front_layer, args.front_layers, "front")
    end_layers = _layers(args.end_layer, args.end_layers, "end")
    settings = settings_from_args(args)
    save_root = Path(args.results_root) / args.save_dir if args.save_dir else Path(args.results_root)
    argv = sys.argv[1:]
    # The original wrote ' '.join(sys.argv); called in-process (tests, notebooks) sys.argv is someone
    # else's, so the command is then rebuilt from the parsed arguments.
    command = (
        "stitchkit " + " ".join(argv) if "stitch" in argv and args.front_model_path in argv else _rebuild_command(args)
    )
    results = stitch_grid(
        args.front_model_path,
        args.end_model_path,
        front_layers,
        end_layers,
        settings,
        GridOptions(
            front_type=args.front_model_type,
            end_type=args.end_model_type,
            model_options=model_options(args),
            command=command,
            save_dir_label=args.save_dir,
        ),
        save_dir=save_root,
    )
    stored = " (stored result; pass --overwrite to recompute)"
    if len(results) == 1 and args.original_output:
        r = results[0]
        print(
            f"Clean accuracy: "
            f"{100 * r.accuracy:.2f}%{describe_ci(r, 'accuracy', 100, '.2f', '%')}{stored if r.skipped else ''}"
        )
    elif len(results) == 1:
        r = results[0]
        relative = r.relative_accuracy
        rel = "n/a" if relative is None else f"{relative:.3f}{describe_ci(r, 'relative_accuracy', 1, '.3f')}"
        print(
            f"stitched {r.front_layer} -> {r.end_layer} ({r.stitching_type}, {r.init}, {r.epochs} "
            f"epoch(s)){stored if r.skipped else ''}: "
            f"accuracy {percent(r.accuracy)}{describe_ci(r, 'accuracy', 100, '.2f', '%')}, end network "
            f"{percent(r.end_accuracy)}, relative accuracy {rel}"
        )
        print_wrote(r.run_dir)
    else:
        done = sum(not r.skipped for r in results)
        print(f"{done} pair(s) stitched, {len(results) - done} already finished; results in {save_root}")
    return 0
