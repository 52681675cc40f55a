"""The original's one-pair workflow: one process per stitch or similarity, run one after another.

Each line of the original's workflow is a process: ``exec_stitch.py`` for one layer pair,
``exec_compute_low_rank_sim_metrics.py`` for one layer pair at a list of ranks. This script times a
sequence of such processes the original's way (emulated from the spec, each its own process) and
stitchkit's way (``stitchkit stitch`` / ``stitchkit similarity`` processes), on the same checkpoints
and data, and prints the ratios:

* ``dm`` — one direct-matching pair (``-e 0 -i pinv``), 8 pairs of a Latin transversal of the 8×8 grid,
  evaluated on the whole test set. The original ran both networks in full with hooks (accuracy pass)
  and again without ``no_grad`` (residual pass): ``bench_stitching.original_single_run``. stitchkit
  runs the front prefix, the stitching layer and the end suffix once; the donors' accuracies and the end
  network's test activations come from the persistent cache after the first run of the sequence (the
  first, cold run is reported apart).
* ``similarity`` — ``similarity A B - - L L -m1r 128 64`` (two ranks of model 1): the original
  re-extracted both networks (full forwards with hooks, batch 64, no ``no_grad``) for every rank pair and
  recomputed the truncated SVD each time (:func:`original_similarity`); stitchkit extracts each network
  once up to the layer and decomposes the layer once for all ranks.
* ``tlm`` — one epoch of task loss matching of one pair (``-e 1``) on a training subset: the original ran
  both networks in full every step, augmented with PIL in a loader worker, validated the same way, then
  the accuracy and residual passes (:func:`original_tlm`).

Networks: CIFAR-style ResNet-18s with random weights on Fashion-MNIST, ``--width`` 16 for the stitches
and ``--sim-width`` 64 for the similarity (two ranks of 128 and 64 need a 256-channel layer).

    python benchmarks/bench_single_runs.py --part dm --pairs 4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _checkpoints(tmp: Path, width: int) -> list[Path]:
    from stitchkit.models import get_model
    from stitchkit.models.checkpoint import save_checkpoint

    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = get_model("resnet18", num_classes=10, in_channels=1, input_size=(28, 28), width=width).eval()
        paths.append(tmp / f"r18_w{width}_s{seed}.pt")
        save_checkpoint(paths[-1], model, dataset="fashion", input_shape=(1, 28, 28))
    return paths


def _timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def _stitchkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "stitchkit", *args]


def _layers() -> list[str]:
    return [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)]


# --------------------------------------------------------------------------------------------------
def bench_dm(args, tmp: Path, env: dict) -> dict:
    a, b = _checkpoints(tmp, args.width)
    layers = _layers()
    pairs = [(layers[i], layers[(3 * i + 1) % 8]) for i in range(8)][: args.pairs]
    ours, original = [], []
    for fl, el in pairs:  # interleaved, so that machine load hits both alike
        ours.append(
            _timed(
                _stitchkit(
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
                    "-d",
                    "fashion",
                    "--no-progress",
                    "--quiet",
                    "--results-root",
                    str(tmp / "results"),
                    "-dir",
                    "dm",
                    "--activation-cache",
                    str(tmp / "cache"),
                ),
                env,
            )
        )
        original.append(
            _timed(
                [
                    sys.executable,
                    str(REPO / "benchmarks" / "bench_stitching.py"),
                    "--original-child",
                    str(a),
                    str(b),
                    fl,
                    el,
                    "--eval-batch",
                    "256",
                    "--threads",
                    str(args.threads),
                ],
                env,
            )
        )
        print(f"  {fl} -> {el}: stitchkit {ours[-1]:.1f} s, the original's way {original[-1]:.1f} s", flush=True)
    warm = sum(ours[1:]) / max(len(ours) - 1, 1)
    orig = sum(original) / len(original)
    out = {
        "stitchkit_seconds": ours,
        "original_seconds": original,
        "ratio_warm": orig / warm,
        "ratio_cold": orig / ours[0],
        "ratio_sequence": sum(original) / sum(ours),
    }
    print(
        f"single DM pair, {len(pairs)} runs in a row on the whole test set: the original's way {orig:.1f} s per run; "
        f"stitchkit {ours[0]:.1f} s cold (first run) -> {out['ratio_cold']:.2f}x, {warm:.1f} s with the cache -> "
        f"{out['ratio_warm']:.2f}x; the whole sequence {out['ratio_sequence']:.2f}x (target >= 3x)"
    )
    return out


# --------------------------------------------------------------------------------------------------
def _svd_low_rank(x: torch.Tensor, rank: int | None) -> torch.Tensor:
    """The original's ``low_rank_approx`` (spec 1.9): a full thin SVD of the centred rows, every call."""
    from stitchkit.activations import to_rows

    if rank is None:
        return x
    rows, restore = to_rows(x)
    mean = rows.mean(0, keepdim=True)
    u, s, vh = torch.linalg.svd(rows - mean, full_matrices=False)
    return restore((u[:, :rank] * s[:rank]) @ vh[:rank] + mean)


def original_similarity(path1: str, path2: str, layer: str, ranks1: list[int | None], ranks2: list[int | None]) -> None:
    """``exec_compute_low_rank_sim_metrics.py`` as the original did it (spec 1.7): for every rank pair,
    both networks in full with hooks outside no_grad over batches of 64 until 1000 test images, the
    truncated SVD of the stacked activations, then CKA, PWCCA and Procrustes from scratch (stitchkit's
    implementations of the same maths, as in bench_similarity.py)."""
    from bench_similarity import MEASURES

    from stitchkit.activations import sample_subset
    from stitchkit.data import get_dataset
    from stitchkit.models.loading import load_model
    from stitchkit.similarity import get_measure, paired_matrices

    torch.manual_seed(0)
    m1, m2 = load_model(path1)[0].eval(), load_model(path2)[0].eval()
    loader = torch.utils.data.DataLoader(sample_subset(get_dataset("fashion", "test"), 1024), batch_size=64)
    grabbed = {}
    dict(m1.named_modules())[layer].register_forward_hook(lambda _m, _i, out: grabbed.__setitem__("x", out))
    dict(m2.named_modules())[layer].register_forward_hook(lambda _m, _i, out: grabbed.__setitem__("y", out))
    for r1 in sorted(ranks1, key=lambda r: -(r or 10**9)):
        for r2 in sorted(ranks2, key=lambda r: -(r or 10**9)):
            xs, ys, n = [], [], 0
            for images, _ in loader:
                m1(images), m2(images)
                xs.extend(grabbed["x"].detach().cpu())
                ys.extend(grabbed["y"].detach().cpu())
                n += images.shape[0]
                if n >= 1000:
                    break
            x, y = _svd_low_rank(torch.stack(xs[:1000]), r1), _svd_low_rank(torch.stack(ys[:1000]), r2)
            for name in MEASURES:
                measure = get_measure(name)
                print(name, r1, r2, float(measure(*paired_matrices(x, y, "auto_original", measure))))


def bench_similarity(args, tmp: Path, env: dict) -> dict:
    a, b = _checkpoints(tmp, args.sim_width)
    layer = args.sim_layer
    ours, original = [], []
    for _ in range(args.sim_reps):
        ours.append(
            _timed(
                _stitchkit(
                    "similarity",
                    str(a),
                    str(b),
                    "-",
                    "-",
                    layer,
                    layer,
                    "-m1r",
                    "128",
                    "64",
                    "-d",
                    "fashion",
                    "-gpu",
                    "-1",
                    "--cache-dir",
                    str(tmp / "cache_similarity"),
                ),
                env,
            )
        )
        original.append(_timed([sys.executable, __file__, "--original-similarity", str(a), str(b), layer], env))
        print(f"  stitchkit {ours[-1]:.1f} s, the original's way {original[-1]:.1f} s", flush=True)
    orig = sum(original) / len(original)
    warm = min(ours[1:]) if len(ours) > 1 else math.nan
    out = {
        "stitchkit_seconds": ours,
        "original_seconds": original,
        "ratio_cold": orig / ours[0],
        "ratio_warm": orig / warm,
        "ratio_sequence": sum(original) / sum(ours),
    }
    print(
        f"similarity {layer} -- {layer} at model-1 ranks 128 and 64, ResNet-18 width {args.sim_width}, {len(ours)} "
        f"runs in a row: the original's way "
        f"{orig:.1f} s per run; stitchkit {ours[0]:.1f} s cold (first run) -> {out['ratio_cold']:.2f}x, {warm:.1f} s "
        f"with the activation cache -> "
        f"{out['ratio_warm']:.2f}x; the whole sequence {out['ratio_sequence']:.2f}x (target >= 3x)"
    )
    return out


# --------------------------------------------------------------------------------------------------
def original_tlm(path1: str, path2: str, front_layer: str, end_layer: str, train_samples: int, batch: int) -> None:
    """One epoch of ``exec_stitch.py -e 1`` as the original ran it (spec 1.3): both networks in full with
    hooks on every training step, images augmented with PIL in one loader worker, a validation pass the
    same way, then the accuracy pass and the residual pass without no_grad."""
    from stitchkit.activations import sample_subset
    from stitchkit.data import get_dataset
    from stitchkit.models.layers import layered
    from stitchkit.models.loading import load_model
    from stitchkit.stitching.layers import make_stitching_layer

    torch.manual_seed(0)
    front, end = load_model(path1)[0].eval().requires_grad_(False), load_model(path2)[0].eval().requires_grad_(False)
    shapes_f, shapes_e = layered(front).shapes((1, 28, 28)), layered(end).shapes((1, 28, 28))
    layer = make_stitching_layer("rc2c_pre", shapes_f[front_layer], shapes_e[end_layer])
    store = {}
    dict(front.named_modules())[front_layer].register_forward_hook(lambda _m, _i, out: store.__setitem__("front", out))
    dict(end.named_modules())[end_layer].register_forward_hook(lambda _m, _i, out: layer(store["front"]))
    train = sample_subset(get_dataset("fashion", "train", augment=True), train_samples, seed=0)
    test = get_dataset("fashion", "test")
    loader = torch.utils.data.DataLoader(train, batch_size=batch, shuffle=True, num_workers=1, prefetch_factor=1)
    test_loader = torch.utils.data.DataLoader(test, batch_size=batch, num_workers=1, prefetch_factor=1)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3, weight_decay=1e-5)
    for x, y in loader:
        opt.zero_grad()
        front(x)
        torch.nn.functional.cross_entropy(end(x), y).backward()
        opt.step()
    for _ in range(2):  # the validation pass, then the accuracy pass
        with torch.no_grad():
            for x, _ in test_loader:
                front(x)
                end(x)
    for x, _ in test_loader:  # the residual pass, without no_grad
        front(x)
        end(x)


def bench_tlm(args, tmp: Path, env: dict) -> dict:
    a, b = _checkpoints(tmp, args.width)
    fl, el = args.tlm_pair.split(",")
    ours = _timed(
        _stitchkit(
            "stitch",
            str(a),
            str(b),
            "-",
            "-",
            fl,
            el,
            "rc2c_pre",
            "-e",
            "1",
            "-b",
            str(args.tlm_batch),
            "-gpu",
            "-1",
            "-d",
            "fashion",
            "--train-subset",
            str(args.tlm_train),
            "--no-progress",
            "--quiet",
            "--results-root",
            str(tmp / "results"),
            "-dir",
            "tlm",
            "--activation-cache",
            str(tmp / "cache_tlm"),
        ),
        env,
    )
    original = _timed(
        [sys.executable, __file__, "--original-tlm", str(a), str(b), fl, el, str(args.tlm_train), str(args.tlm_batch)],
        env,
    )
    ratio = original / ours
    print(
        f"one TLM epoch of {fl} -> {el} over {args.tlm_train} images (batch {args.tlm_batch}), whole test set: the "
        f"original's way {original:.1f} s, stitchkit {ours:.1f} s -> {ratio:.2f}x"
    )
    return {"stitchkit_seconds": ours, "original_seconds": original, "ratio": ratio}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["dm", "similarity", "tlm", "all"], default="all")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--sim-width", type=int, default=64)
    p.add_argument("--sim-layer", default="layer3.0")
    p.add_argument("--sim-reps", type=int, default=2)
    p.add_argument("--pairs", type=int, default=8, help="dm part: pairs of the transversal run one after another")
    p.add_argument("--tlm-pair", default="layer3.0,layer2.0")
    p.add_argument("--tlm-train", type=int, default=10000)
    p.add_argument("--tlm-batch", type=int, default=256, help="the original's default -b")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--original-similarity", nargs=3, default=None, help=argparse.SUPPRESS)
    p.add_argument("--original-tlm", nargs=6, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.original_similarity:
        original_similarity(*args.original_similarity, [128, 64], [None])
        return
    if args.original_tlm:
        path1, path2, fl, el, n, batch = args.original_tlm
        original_tlm(path1, path2, fl, el, int(n), int(batch))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(
        f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {args.threads} threads per process, "
        f"CUDA {'available' if torch.cuda.is_available() else 'not available'}; Fashion-MNIST, every run its own "
        f"process",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-single-"))
    results = {}
    for part, fn in (("dm", bench_dm), ("similarity", bench_similarity), ("tlm", bench_tlm)):
        if args.part in (part, "all"):
            print(f"== {part}", flush=True)
            results[part] = fn(args, tmp, env)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
