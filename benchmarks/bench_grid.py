"""Layer grids at the speed limit: grouped grids against the pair-by-pair way, measured in one run.

Parts (``--part``, default all):

* ``tlm`` — one epoch of task loss matching of the 8×8 block grid of two ResNet-18s, grouped (the
  default: one front pass per batch, one end-suffix pass per group of pairs, batches built on the
  device) against the pair-by-pair grid as it was before grouping (``grouping="per-pair"``, a
  DataLoader, contiguous layout), on the same data and seed; both give the same stitches (largest
  accuracy difference printed). Where the grouped time goes is printed from timers around its parts;
  the **floor** is the stitching layers plus the end suffix, forward and backward, of every pair on
  every training image (and forward on every test image), which no grid can avoid.
* ``dm`` — the 8×8 direct-matching grid on the whole Fashion-MNIST test set in one process against 64
  single-pair runs done the original's way (``bench_stitching.original_single_run``: both networks in
  full with hooks, two CPU pinvs, an accuracy pass and a residual pass without ``no_grad``, each its own
  process), estimated from 8 runs on a Latin transversal of the grid (8 × their total; see
  ``bench_stitching.py``). Also the grid pair by pair, for the share that grouping itself gains.
* ``ood`` — the test pass of the OOD test of a grid (64 stitches, an energy detector per end layer and
  k-NN): one grouped pass against the per-stitch passes over front activations extracted once (what
  ``stitchkit ood`` did before).

Networks: CIFAR-style ResNet-18 at ``--width`` (default 16; the paper's is 64) on Fashion-MNIST, random
weights (the cost does not depend on them); ``--threads`` torch threads (default 2, the machine's cores).

    python benchmarks/bench_grid.py --part tlm
    python benchmarks/bench_grid.py --part dm --test-samples 2000 --baseline-pairs 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TODAY = dict(
    grouping="per-pair", data_path="loader", channels_last=False, fold_batchnorm=False
)  # the grid before grouping


def _models(width: int):
    from stitchkit.models import get_model

    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out.append(get_model("resnet18", num_classes=10, in_channels=1, input_size=(28, 28), width=width).eval())
    return out


class Timers:
    """Seconds spent inside wrapped functions (nested calls counted once, by the outermost)."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._depth = 0

    def wrap(self, owner, name: str, label: str):
        real = getattr(owner, name)
        timers = self

        def timed(*args, **kwargs):
            if timers._depth:
                return real(*args, **kwargs)
            timers._depth += 1
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                timers.seconds[label] += time.perf_counter() - start
                timers._depth -= 1

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, real)


@contextlib.contextmanager
def grid_timers():
    """Timers around the parts of a grouped grid: data, front and end passes, the stitched suffix
    passes (forward, and backward when training)."""
    from stitchkit.data.device_batches import DeviceBatches
    from stitchkit.stitching import grouped

    timers = Timers()
    undo = [
        timers.wrap(DeviceBatches, "batch", "data (batches on the device)"),
        timers.wrap(grouped.GridPass, "fronts", "front network, all front layers"),
        timers.wrap(grouped.GridPass, "ends", "end network, all end layers (residuals)"),
        timers.wrap(grouped.GridPass, "group_forward", "floor: stitching layers + end suffix, forward"),
        timers.wrap(torch.Tensor, "backward", "floor: stitching layers + end suffix, backward"),
    ]
    try:
        yield timers
    finally:
        for u in undo:
            u()


def _report(total: float, timers: Timers) -> tuple[float, list[str]]:
    floor = sum(v for k, v in timers.seconds.items() if k.startswith("floor"))
    lines = [
        f"    {k:<55} {v:7.1f} s  {100 * v / total:5.1f}%"
        for k, v in sorted(timers.seconds.items(), key=lambda kv: -kv[1])
    ]
    rest = total - sum(timers.seconds.values())
    lines.append(
        f"    {'everything else (DM fits, records, optimizer steps, ...)':<55} {rest:7.1f} s  "
        f"{100 * rest / total:5.1f}%"
    )
    lines.append(f"    grouped time / floor: {total / floor:.2f}")
    return floor, lines


# --------------------------------------------------------------------------------------------------
def bench_tlm(args) -> dict:
    from stitchkit.stitching import StitchSettings, stitch_grid
    from stitchkit.training.optim import OptimConfig

    front, end = _models(args.width)
    common = dict(
        stitching_type="rc2c_pre",
        init="rand",
        epochs=1,
        batch_size=args.tlm_batch,
        optim=OptimConfig(lr=1e-2),
        dataset="fashion",
        train_samples=args.train_samples,
        test_samples=args.tlm_test_samples,
        device="cpu",
        workers=0,
        progress=False,
        verbose=False,
    )
    times = {"grouped": [], "per-pair": []}
    results = {}
    for rep in range(args.reps):  # interleaved, so that machine load hits both alike
        for label, extra in (("per-pair", TODAY), ("grouped", {})):
            context = grid_timers() if label == "grouped" and rep == args.reps - 1 else contextlib.nullcontext()
            with context as timers:
                start = time.perf_counter()
                results[label] = stitch_grid(front, end, "all", "all", StitchSettings(**common, **extra))
                times[label].append(time.perf_counter() - start)
            print(f"  {label}: {times[label][-1]:.1f} s", flush=True)
            if timers is not None:
                profile = timers
    best = {k: min(v) for k, v in times.items()}
    diff = max(abs(a.accuracy - b.accuracy) for a, b in zip(results["per-pair"], results["grouped"]))
    ratio = best["per-pair"] / best["grouped"]
    floor, lines = _report(times["grouped"][-1], profile)
    group = results["grouped"][0].execution["group_size"]
    print(
        f"8x8 TLM grid, one epoch over {args.train_samples} images (batch {args.tlm_batch}) + validation on "
        f"{args.tlm_test_samples}:"
    )
    print(
        f"  per-pair (before grouping) {best['per-pair']:.1f} s, grouped (group size {group}) {best['grouped']:.1f} s "
        f"-> {ratio:.2f}x (target >= 2x); largest accuracy difference {diff:.2e}"
    )
    print("  where the grouped grid's time goes:")
    print("\n".join(lines))
    return {
        "per_pair_seconds": best["per-pair"],
        "grouped_seconds": best["grouped"],
        "ratio": ratio,
        "max_accuracy_difference": diff,
        "floor_seconds": floor,
        "group_size": group,
        "profile": dict(profile.seconds),
    }


# --------------------------------------------------------------------------------------------------
def bench_dm(args) -> dict:
    from stitchkit.models.checkpoint import save_checkpoint
    from stitchkit.models.layers import layered
    from stitchkit.stitching import StitchSettings, stitch_grid

    tmp = Path(tempfile.mkdtemp(prefix="bench-dm-grid-"))
    models = _models(args.width)
    paths = []
    for i, model in enumerate(models):
        paths.append(tmp / f"r18_w{args.width}_s{i}.pt")
        save_checkpoint(paths[-1], model, dataset="fashion", input_shape=(1, 28, 28))
    common = dict(
        stitching_type="rc2c_pre",
        init="pinv",
        epochs=0,
        batch_size=args.eval_batch,
        dataset="fashion",
        test_samples=args.test_samples,
        device="cpu",
        workers=0,
        progress=False,
        verbose=False,
    )
    with grid_timers() as timers:
        start = time.perf_counter()
        grouped = stitch_grid(
            str(paths[0]), str(paths[1]), "all", "all", StitchSettings(**common), save_dir=tmp / "grid"
        )
        grid_seconds = time.perf_counter() - start
    print(f"  grouped grid: {grid_seconds:.1f} s", flush=True)
    per_pair_seconds = None
    if not args.skip_per_pair:
        start = time.perf_counter()
        per_pair = stitch_grid(
            str(paths[0]), str(paths[1]), "all", "all", StitchSettings(**common, **TODAY), save_dir=tmp / "per_pair"
        )
        per_pair_seconds = time.perf_counter() - start
        diff = max(abs(a.accuracy - b.accuracy) for a, b in zip(per_pair, grouped))
        print(
            f"  pair-by-pair grid (before grouping): {per_pair_seconds:.1f} s; largest accuracy difference {diff:.2e}",
            flush=True,
        )
    layers = layered(models[0]).layers
    transversal = [(layers[i], layers[(3 * i + 1) % len(layers)]) for i in range(len(layers))][: args.baseline_pairs]
    original = []
    for fl, el in transversal:
        cmd = [
            sys.executable,
            str(REPO / "benchmarks" / "bench_stitching.py"),
            "--original-child",
            str(paths[0]),
            str(paths[1]),
            fl,
            el,
            "--eval-batch",
            str(args.eval_batch),
            "--threads",
            str(args.threads),
        ]
        if args.test_samples:
            cmd += ["--test-samples", str(args.test_samples)]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        original.append(time.perf_counter() - start)
        print(f"  the original's way, one process, {fl} -> {el}: {original[-1]:.1f} s", flush=True)
    estimate = len(layers) ** 2 / len(transversal) * sum(original)
    ratio = estimate / grid_seconds
    floor, lines = _report(grid_seconds, timers)
    n = args.test_samples or 10_000
    print(
        f"8x8 DM grid on {n} test images: grouped {grid_seconds:.1f} s; 64 single-pair runs the original's way "
        f"~{estimate:.0f} s (from {len(transversal)} runs) -> {ratio:.1f}x (target >= 10x)"
    )
    if per_pair_seconds:
        print(f"  grouping alone: {per_pair_seconds / grid_seconds:.2f}x over the same grid pair by pair")
    print("  where the grouped grid's time goes:")
    print("\n".join(lines))
    return {
        "grid_seconds": grid_seconds,
        "per_pair_seconds": per_pair_seconds,
        "original_seconds": original,
        "estimated_64_original": estimate,
        "ratio_vs_original": ratio,
        "floor_seconds": floor,
        "test_samples": n,
        "profile": dict(timers.seconds),
    }


# --------------------------------------------------------------------------------------------------
def bench_ood(args) -> dict:
    import numpy as np

    from stitchkit.activations import ExtractionSettings, extract_activations, sample_subset
    from stitchkit.data import get_dataset
    from stitchkit.data.loading import make_batches
    from stitchkit.models import get_model
    from stitchkit.models.layers import layered
    from stitchkit.ood.detectors import EnergyDetector, make_detector
    from stitchkit.ood.evaluate import evaluate_stitched
    from stitchkit.ood.grouped import grouped_stitch_scores
    from stitchkit.stitching.grouped import GridPair, GridPass
    from stitchkit.stitching.stitcher import Stitcher

    front, end = _models(args.width)
    layers = layered(front).layers
    shapes = layered(end).shapes((1, 28, 28))
    test = sample_subset(get_dataset("fashion", "test"), args.ood_samples)
    fit = sample_subset(get_dataset("fashion", "train", augment=False), 1000, seed=0)
    fit_acts = extract_activations(end, layers, fit)
    detectors = {}
    for layer in layers:
        torch.manual_seed(0)
        energy = EnergyDetector(
            get_model("repr_cls_resnet18", num_classes=10, in_channels=shapes[layer][0], input_size=(28, 28), width=4)
        )
        knn = make_detector("knn", k=10).fit(fit_acts[layer], fit_acts.labels)
        detectors[layer] = {"energy": energy, "knn": knn}
    pairs = [
        GridPair(f, e, Stitcher(front, end, f, e, "rc2c_pre", input_shape=(1, 28, 28)).eval())
        for e in layers
        for f in layers
    ]
    # before: the front activations once, then one pass per stitch through its layer, the end suffix and the detectors
    start = time.perf_counter()
    front_acts = extract_activations(front, layers, test, settings=ExtractionSettings(batch_size=args.eval_batch))
    before = []
    for pair in pairs:

        def batches(pair=pair):
            with torch.no_grad():
                for acts, y in front_acts.batches(pair.front_layer, args.eval_batch):
                    stitched = pair.stitcher.stitch(acts)
                    yield stitched, y, pair.stitcher.end(stitched)

        before.append(
            evaluate_stitched(
                end,
                pair.end_layer,
                detectors[pair.end_layer],
                batches(),
                id_scores={"energy": np.zeros(2), "knn": np.zeros(2)},
            )
        )
    before_seconds = time.perf_counter() - start
    print(f"  per stitch (before): {before_seconds:.1f} s", flush=True)
    from stitchkit.ood.detectors import KNNDetector
    from stitchkit.utils.device import channels_last

    grid = GridPass(pairs, 1, channels_last=True)  # what `stitchkit ood` picks on a CPU
    with grid_timers() as timers, torch.no_grad(), channels_last(front, end):
        undo = [
            timers.wrap(EnergyDetector, "predict", "floor: energy detectors"),
            timers.wrap(KNNDetector, "predict", "floor: k-NN detectors"),
        ]
        start = time.perf_counter()
        scored = grouped_stitch_scores(grid, make_batches(test, args.eval_batch, shuffle=False), detectors, "cpu")
        grouped_seconds = time.perf_counter() - start
        for u in undo:
            u()
    print(f"  grouped: {grouped_seconds:.1f} s", flush=True)
    diff = max(float(np.max(np.abs(b.ood_scores["energy"] - g.arrays()["energy"]))) for b, g in zip(before, scored))
    acc = max(abs(b.accuracy - g.accuracy) for b, g in zip(before, scored))
    ratio = before_seconds / grouped_seconds
    floor, lines = _report(grouped_seconds, timers)
    print(
        f"OOD test pass of a 64-stitch grid on {args.ood_samples} test images (energy + k-NN detectors): per stitch "
        f"{before_seconds:.1f} s, "
        f"grouped {grouped_seconds:.1f} s -> {ratio:.2f}x; largest energy difference {diff:.1e}, accuracy difference "
        f"{acc:.1e}"
    )
    print(
        "  where the grouped pass's time goes (the floor: stitching layers, end suffixes and detectors on every "
        "stitched batch):"
    )
    print("\n".join(lines))
    return {
        "before_seconds": before_seconds,
        "grouped_seconds": grouped_seconds,
        "ratio": ratio,
        "max_energy_difference": diff,
        "floor_seconds": floor,
        "profile": dict(timers.seconds),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["tlm", "dm", "ood", "all"], default="all")
    p.add_argument("--width", type=int, default=16, help="ResNet-18 base width (the paper's: 64)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=1, help="tlm part: interleaved repetitions (the best is kept)")
    p.add_argument("--train-samples", type=int, default=2000, help="tlm part: training images of the epoch")
    p.add_argument("--tlm-batch", type=int, default=64, help="tlm part: batch size (the demo's)")
    p.add_argument("--tlm-test-samples", type=int, default=500, help="tlm part: validation and evaluation images")
    p.add_argument("--eval-batch", type=int, default=256, help="dm and ood parts: batch size")
    p.add_argument(
        "--test-samples", type=int, default=None, help="dm part: the first N test images (default all 10,000)"
    )
    p.add_argument(
        "--baseline-pairs",
        type=int,
        default=8,
        help="dm part: single runs the original's way to time (of the 8-pair transversal)",
    )
    p.add_argument("--skip-per-pair", action="store_true", help="dm part: do not time the grid pair by pair")
    p.add_argument("--ood-samples", type=int, default=2000, help="ood part: test images")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    print(
        f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"CUDA {'available' if torch.cuda.is_available() else 'not available'}; ResNet-18 width {args.width} on "
        f"Fashion-MNIST (1x28x28)",
        flush=True,
    )
    results = {}
    for part, fn in (("tlm", bench_tlm), ("dm", bench_dm), ("ood", bench_ood)):
        if args.part in (part, "all"):
            print(f"== {part}", flush=True)
            results[part] = fn(args)
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
