"""Stitching benchmarks: ratios against a naive baseline measured in the same run (not timed tests).

Parts (``--part``, default all):

* ``forward`` — the stitched forward pass and one TLM training step (forward, cross-entropy, backward,
  Adam step on the stitching layer) of :class:`stitchkit.stitching.Stitcher` (front prefix → layer → end
  suffix) against the original's wiring (both networks run in full, a forward hook replaces the end
  layer's output: :func:`stitchkit.stitching.stitcher.naive_hooked_forward`), for all 64 block pairs of
  two ResNet-18s. Timings interleave the two and keep the best of ``--reps``.
* ``grid`` — a full 8×8 direct-matching grid in one process (``stitchkit stitch a b - - all all
  rc2c_pre -e 0 -i pinv``, spawned once) against 64 single-pair runs, each its own process like the
  original's one-process-per-pair workflow: (``spawned``) the same ``stitchkit stitch`` command with one
  pair, and (``original``) a process doing what the original's ``exec_stitch.py -e 0 -i pinv`` did
  (:func:`original_single_run`: both networks run in full with hooks, two CPU pinvs on one batch of K
  images, an accuracy pass and a second residual pass without no_grad). The 64 single runs are estimated
  from 8 runs on a Latin transversal of the grid (every front layer and every end layer exactly once; a
  run's cost is a fixed part plus a front-layer part plus an end-layer part, so 8 × their total is the
  expected total of all 64). (``inprocess``) the same 8 pairs of ``stitch_pair`` in one process, with
  models and datasets reloaded per pair, give the ratio without interpreter start-up.
* ``memory`` — peak resident memory of a direct-matching fit with K = 100 vs K = 10,000 fit images,
  each in a fresh subprocess (``resource.getrusage`` maxrss), with the process's resident memory just
  before the fit subtracted for the "fit only" ratio.

Models are width-reduced CIFAR ResNet-18s (``--width``, default 16; the original's is 64) on
Fashion-MNIST-shaped 1×28×28 inputs, because full size is too slow on a 2-core CPU; the relative costs of
prefix, suffix and full passes do not depend on the width. ``--threads`` sets torch's CPU threads.

    python benchmarks/bench_stitching.py                 # everything (about 15 minutes on 2 cores)
    python benchmarks/bench_stitching.py --part forward --reps 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _models(width: int, seeds=(0, 1)):
    from stitchkit.models import get_model

    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        out.append(get_model("resnet18", num_classes=10, in_channels=1, input_size=(28, 28), width=width).eval())
    return out


def _best(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------------------------------
def bench_forward(args) -> dict:
    from stitchkit.models.layers import layered
    from stitchkit.stitching.stitcher import Stitcher, naive_hooked_forward

    front, end = _models(args.width)
    layers = layered(front).layers
    x = torch.rand(args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(1))
    rows = []
    for fl, el in itertools.product(layers, layers):
        stitcher = Stitcher(front, end, fl, el, "rc2c_pre", input_shape=(1, 28, 28))
        naive, remove = naive_hooked_forward(front, end, fl, el, stitcher.layer)
        opt = torch.optim.Adam(stitcher.trainable_parameters(), lr=1e-3)

        def ours_fwd():
            with torch.no_grad():
                stitcher(x)

        def naive_fwd():
            with torch.no_grad():
                naive(x)

        def ours_step():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(stitcher(x), y).backward()
            opt.step()

        def naive_step():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(naive(x), y).backward()
            opt.step()

        stitcher.train()
        ours_fwd(), naive_fwd(), ours_step(), naive_step()  # warm-up
        t = {"ours_fwd": [], "naive_fwd": [], "ours_step": [], "naive_step": []}
        for _ in range(args.reps):  # interleaved, so machine load hits both alike
            for name, fn in (
                ("ours_fwd", ours_fwd),
                ("naive_fwd", naive_fwd),
                ("ours_step", ours_step),
                ("naive_step", naive_step),
            ):
                t[name].append(_best(fn, 1))
        remove()
        row = {"front": fl, "end": el, **{k: min(v) for k, v in t.items()}}
        row["fwd_ratio"] = row["naive_fwd"] / row["ours_fwd"]
        row["step_ratio"] = row["naive_step"] / row["ours_step"]
        rows.append(row)
        print(
            f"  {fl:>8} -> {el:<8} forward {row['fwd_ratio']:5.2f}x  training step {row['step_ratio']:5.2f}x",
            flush=True,
        )
    n = len(rows)
    summary = {
        "pairs": n,
        "forward_mean_of_ratios": sum(r["fwd_ratio"] for r in rows) / n,
        "forward_ratio_of_totals": sum(r["naive_fwd"] for r in rows) / sum(r["ours_fwd"] for r in rows),
        "step_mean_of_ratios": sum(r["step_ratio"] for r in rows) / n,
        "step_ratio_of_totals": sum(r["naive_step"] for r in rows) / sum(r["ours_step"] for r in rows),
        "forward_min_ratio": min(r["fwd_ratio"] for r in rows),
        "step_min_ratio": min(r["step_ratio"] for r in rows),
    }
    print(
        f"forward: {summary['forward_mean_of_ratios']:.2f}x mean over pairs "
        f"({summary['forward_ratio_of_totals']:.2f}x of total time; "
        f"target >= 1.8x)\ntraining step: {summary['step_mean_of_ratios']:.2f}x mean over pairs "
        f"({summary['step_ratio_of_totals']:.2f}x of total time; target >= 1.4x)"
    )
    return summary


# --------------------------------------------------------------------------------------------------
def _stitch_cmd(a, b, fl, el, root, extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "stitchkit",
        "stitch",
        str(a),
        str(b),
        "-",
        "-",
        fl,
        el,
        "rc2c_pre",
        "-e",
        "0",
        "-i",
        "pinv",
        "-gpu",
        "-1",
        "-workers",
        "0",
        "--no-progress",
        "--quiet",
        "--results-root",
        str(root),
        *extra,
    ]


def bench_grid(args) -> dict:
    from stitchkit.models.checkpoint import save_checkpoint
    from stitchkit.models.layers import layered
    from stitchkit.stitching import StitchSettings, stitch_pair

    tmp = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    models = _models(args.width)
    paths = []
    for i, model in enumerate(models):
        paths.append(tmp / f"r18_w{args.width}_s{i}.pt")
        save_checkpoint(paths[-1], model, dataset="fashion", input_shape=(1, 28, 28))
    layers = layered(models[0]).layers
    extra = ["-d", "fashion", "-b", str(args.eval_batch)] + (
        ["--test-samples", str(args.test_samples)] if args.test_samples else []
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "STITCHKIT_TORCH_THREADS": str(args.threads)}
    pre = (
        f"import torch; torch.set_num_threads({args.threads}); import runpy, sys; "
        "sys.argv = ['stitchkit'] + sys.argv[1:]; runpy.run_module('stitchkit', run_name='__main__')"
    )

    def spawn(cmd):
        cmd = [cmd[0], "-c", pre] + cmd[3:]  # python -c <set threads, run stitchkit> stitch ...
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    transversal = [(layers[i], layers[(3 * i + 1) % len(layers)]) for i in range(len(layers))]  # a permutation
    assert sorted(e for _, e in transversal) == sorted(layers)
    print("  grid: 8x8 in one process ...", flush=True)
    grid_seconds = spawn(_stitch_cmd(paths[0], paths[1], "all", "all", tmp / "grid", extra))
    print(f"  grid: {grid_seconds:.1f} s", flush=True)
    wanted = set(args.baselines.split(","))
    single, in_process, original = [], [], []
    for fl, el in transversal if "spawned" in wanted else []:
        single.append(spawn(_stitch_cmd(paths[0], paths[1], fl, el, tmp / "single", extra)))
        print(f"  single-pair process {fl} -> {el}: {single[-1]:.1f} s", flush=True)
    settings = StitchSettings(
        stitching_type="rc2c_pre",
        init="pinv",
        epochs=0,
        dataset="fashion",
        batch_size=args.eval_batch,
        test_samples=args.test_samples,
        workers=0,
        progress=False,
        verbose=False,
        device="cpu",
    )
    for fl, el in transversal if "inprocess" in wanted else []:
        start = time.perf_counter()
        stitch_pair(
            str(paths[0]), str(paths[1]), fl, el, settings, save_dir=tmp / "inproc"
        )  # loads models and data again
        in_process.append(time.perf_counter() - start)
        print(f"  single pair in-process {fl} -> {el}: {in_process[-1]:.1f} s", flush=True)
    for fl, el in transversal if "original" in wanted else []:
        extra_args = ["--eval-batch", str(args.eval_batch), "--threads", str(args.threads)]
        if args.test_samples:
            extra_args += ["--test-samples", str(args.test_samples)]
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--original-child", str(paths[0]), str(paths[1]), fl, el, *extra_args],
            check=True,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        original.append(time.perf_counter() - start)
        print(f"  single-pair process the original's way {fl} -> {el}: {original[-1]:.1f} s", flush=True)
    summary = {"grid_seconds": grid_seconds, "test_samples": args.test_samples or 10000}
    lines = [f"8x8 DM grid: {grid_seconds:.1f} s in one process (target >= 10x faster than 64 single-pair runs)"]
    for key, times, what in (
        ("spawned", single, "64 single-pair `stitchkit stitch` processes"),
        ("inprocess", in_process, "64 single pairs in-process, models and data reloaded per pair"),
        ("original", original, "64 single-pair processes doing what the original's exec_stitch.py did"),
    ):
        if times:
            estimate = 8 * sum(times)
            summary[f"{key}_seconds_8"] = times
            summary[f"estimated_64_{key}_seconds"] = estimate
            summary[f"ratio_vs_{key}"] = estimate / grid_seconds
            lines.append(f"  vs {what}: ~{estimate:.0f} s -> {estimate / grid_seconds:.1f}x")
    print("\n".join(lines))
    return summary


def original_single_run(front_path, end_path, front_layer, end_layer, args) -> float:
    """One ``exec_stitch.py -e 0 -i pinv`` run as the original did it (spec 1.3, 1.3.1), in-process: load
    both models and the datasets, hook both networks and run them in full; DM on one batch of K = 100
    training images with two CPU pinvs (install, then the reported residual); one accuracy pass over the
    test set; a second full pass for the residual without no_grad. Returns the accuracy."""
    from stitchkit.activations import sample_subset, to_rows
    from stitchkit.data import get_dataset
    from stitchkit.models.layers import layered
    from stitchkit.models.loading import load_model
    from stitchkit.stitching.layers import make_stitching_layer

    front, _ = load_model(front_path)
    end, _ = load_model(end_path)
    for m in (front, end):
        m.eval().requires_grad_(False)
    train = get_dataset("fashion", "train", augment=False)
    test = get_dataset("fashion", "test")
    if args.test_samples:
        test = sample_subset(test, args.test_samples, None)
    shapes_f, shapes_e = layered(front).shapes((1, 28, 28)), layered(end).shapes((1, 28, 28))
    layer = make_stitching_layer("rc2c_pre", shapes_f[front_layer], shapes_e[end_layer])
    store = {}
    fm, em = dict(front.named_modules())[front_layer], dict(end.named_modules())[end_layer]
    fm.register_forward_hook(lambda _m, _i, out: store.__setitem__("front", out))

    def replace(_m, _i, out):
        store["end"] = out
        if not store.get("stitch"):
            return out
        store["stitched"] = layer(store["front"])
        return store["stitched"]

    em.register_forward_hook(replace)
    x, _ = next(iter(torch.utils.data.DataLoader(train, batch_size=100, shuffle=True)))
    front(x), end(x)
    xs, _ = to_rows(layer.pre_transform(store["front"]))
    ys, _ = to_rows(store["end"])
    xa = torch.cat([xs, torch.ones(len(xs), 1)], 1)
    theta = torch.linalg.pinv(xa) @ ys
    layer.set_affine(theta[:-1].T, theta[-1])
    theta0 = torch.linalg.pinv(xa, atol=0.0, rtol=0.0) @ ys  # the reported "Normalized PINV difference"
    float(((xa @ theta0 - ys) ** 2).sum() / (ys**2).sum())
    store["stitch"] = True
    loader = torch.utils.data.DataLoader(test, batch_size=args.eval_batch)
    hits = 0
    with torch.no_grad():
        for x, y in loader:
            front(x)
            hits += int((end(x).argmax(-1) == y).sum())
    ratios = []
    for x, _ in loader:  # the second pass, without no_grad, as in the original
        front(x)
        end(x)
        ratios.append(float((((store["stitched"] - store["end"]) ** 2).sum() / (store["end"] ** 2).sum()).detach()))
    return hits / len(test)


# --------------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(k: int, width: int, layer: str, threads: int) -> None:
    torch.set_num_threads(threads)
    from stitchkit.data import get_dataset
    from stitchkit.stitching import StitchSettings, stitch_pair

    front, end = _models(width)
    get_dataset("fashion", "train", augment=False), get_dataset("fashion", "test")  # loaded before the baseline reading
    settings = StitchSettings(
        stitching_type="rc2c_pre",
        init="pinv",
        epochs=0,
        dataset="fashion",
        fit_samples=k,
        test_samples=256,
        workers=0,
        progress=False,
        verbose=False,
        device="cpu",
    )
    from stitchkit.models.layers import layered

    layered(front), layered(end)  # traced (and timm imported) before the baseline reading
    before = _rss_mb()
    start = time.perf_counter()
    result = stitch_pair(front, end, layer, layer, settings)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"k": k, "peak_mb": peak, "before_mb": before, "seconds": seconds, "n_fit_rows": result.n_fit_rows})
    )


def bench_memory(args) -> dict:
    out = {}
    for k in (100, 10_000):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                str(k),
                "--width",
                str(args.width),
                "--threads",
                str(args.threads),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        out[k] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"  K={k}: peak {out[k]['peak_mb']:.0f} MB (resident before the fit {out[k]['before_mb']:.0f} MB), "
            f"{out[k]['n_fit_rows']} rows, {out[k]['seconds']:.1f} s",
            flush=True,
        )
    small, large = out[100], out[10_000]
    summary = {
        "peak_mb_k100": small["peak_mb"],
        "peak_mb_k10000": large["peak_mb"],
        "peak_ratio": large["peak_mb"] / small["peak_mb"],
        "fit_only_mb_k100": small["peak_mb"] - small["before_mb"],
        "fit_only_mb_k10000": large["peak_mb"] - large["before_mb"],
        "seconds_k100": small["seconds"],
        "seconds_k10000": large["seconds"],
    }
    summary["fit_only_ratio"] = summary["fit_only_mb_k10000"] / max(summary["fit_only_mb_k100"], 1e-9)
    print(
        f"peak memory K=10,000 / K=100: {summary['peak_ratio']:.2f} (target <= 1.3); above the pre-fit level: "
        f"{summary['fit_only_mb_k10000']:.0f} MB vs {summary['fit_only_mb_k100']:.0f} MB"
    )
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["forward", "grid", "memory", "all"], default="all")
    p.add_argument("--width", type=int, default=16, help="ResNet-18 base width (the original's: 64)")
    p.add_argument("--batch", type=int, default=128, help="batch size of the forward/training-step part")
    p.add_argument("--eval-batch", type=int, default=256, help="batch size (-b) of the grid part")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--test-samples",
        type=int,
        default=None,
        help="grid part: evaluate on the first N test images (default all 10,000)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--baselines", default="spawned,inprocess,original", help="grid part: which single-pair baselines to time"
    )
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--original-child", nargs=4, default=None, help=argparse.SUPPRESS)
    p.add_argument("--layer", default="layer1.0", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.original_child is not None:
        torch.set_num_threads(args.threads)
        original_single_run(*args.original_child, args)
        return
    if args.memory_child is not None:
        memory_child(args.memory_child, args.width, args.layer, args.threads)
        return
    torch.set_num_threads(args.threads)
    print(
        f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"CUDA {'available' if torch.cuda.is_available() else 'not available'}; "
        f"ResNet-18 width {args.width} on 1x28x28",
        flush=True,
    )
    results = {}
    for part, fn in (("forward", bench_forward), ("grid", bench_grid), ("memory", bench_memory)):
        if args.part in (part, "all"):
            print(f"== {part}", flush=True)
            results[part] = fn(args)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
