"""Benchmark: the 8 × 8 ResNet-18 CKA / PWCCA / Procrustes matrix at n = 1000, stitchkit vs the original's way.

* **original** (``exec_compute_low_rank_sim_metrics.py``, seed spec 1.7): for every (layer 1, layer 2)
  pair, ``compute_metrics`` iterates the test loader (batch 64) through *both* networks with a forward
  hook — the full network, outside ``no_grad`` — until it has 1000 samples, then computes the three
  measures from scratch. Emulated here with forward hooks and the same measure implementations, so
  the only differences are the ones stitchkit makes on purpose.
* **stitchkit** (:func:`stitchkit.similarity.compare_models`, ``--all-pairs``): each network's prefix
  runs once over the 1000 samples (under ``no_grad``) for all 8 layers; each layer is prepared once per
  measure (centred Gram matrix, SVD, ...), then the 64 pairs are compared.

Both produce the same matrices (checked). The original's timing can be measured on the first
``--baseline-pairs`` pairs and extrapolated to 64 (said so in the output).

    python benchmarks/bench_similarity.py                 # width-16 ResNet-18 on 1×28×28 inputs
    python benchmarks/bench_similarity.py --width 64 --image-size 32 --channels 3   # the paper's size
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from stitchkit.models import get_model
from stitchkit.models.layers import layered
from stitchkit.similarity import SimilaritySettings, compare_models, get_measure, paired_matrices, result_matrix

MEASURES = ("cka", "pwcca", "procrustes")


def original_pair(model1, model2, layer1, layer2, loader, n_samples):
    """The original's compute_metrics for one layer pair: hooks, full forwards, no no_grad, measures from scratch."""
    grabbed = {}

    def hook(key):
        def save(module, inputs, output):
            grabbed[key] = output

        return save

    handles = [
        dict(model1.named_modules())[layer1].register_forward_hook(hook("x")),
        dict(model2.named_modules())[layer2].register_forward_hook(hook("y")),
    ]
    xs, ys, count = [], [], 0
    try:
        for images, _ in loader:
            model1(images)
            model2(images)
            xs.extend(grabbed["x"].detach().cpu())  # per sample, like the original
            ys.extend(grabbed["y"].detach().cpu())
            count += images.shape[0]
            if count >= n_samples:
                break
    finally:
        for h in handles:
            h.remove()
    x, y = torch.stack(xs[:n_samples]), torch.stack(ys[:n_samples])
    out = {}
    for name in MEASURES:
        measure = get_measure(name)
        mx, my = paired_matrices(x, y, "auto_original", measure)
        out[name] = measure(mx, my)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16, help="ResNet-18 base width (the paper: 64)")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument(
        "--baseline-pairs", type=int, default=64, help="time the original's way on this many pairs, extrapolate to 64"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = (args.channels, args.image_size, args.image_size)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(
            get_model(
                "resnet18", num_classes=10, in_channels=args.channels, input_size=args.image_size, width=args.width
            ).eval()
        )
    images = torch.rand(
        args.n_samples, *shape, generator=torch.Generator().manual_seed(0)
    )  # the measures' cost does not depend on content
    data = TensorDataset(images, torch.zeros(args.n_samples, dtype=torch.long))
    layers = layered(models[0]).layers
    pairs = [(a, b) for a in layers for b in layers]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, "
        f"GPU: {'yes' if torch.cuda.is_available() else 'no'}; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"ResNet-18 width {args.width} on {'×'.join(map(str, shape))} inputs, n = {args.n_samples}, {len(pairs)} "
        f"layer pairs, measures {', '.join(MEASURES)}"
    )

    started = time.perf_counter()
    settings = SimilaritySettings(
        measures=MEASURES, n_samples=args.n_samples, all_pairs=True, device="cpu", batch_size=256
    )
    report = compare_models(models[0], models[1], None, None, data, settings)
    fast = time.perf_counter() - started
    print(
        f"stitchkit (one extraction per network, each layer prepared once): {fast:.1f} s "
        f"(extraction {report.info['extraction_seconds']:.1f} s, measures {report.info['measure_seconds']:.1f} s)"
    )

    loader = DataLoader(data, batch_size=64, shuffle=False)
    timed = pairs[: max(1, min(args.baseline_pairs, len(pairs)))]
    started = time.perf_counter()
    worst = 0.0
    for a, b in timed:
        values = original_pair(models[0], models[1], a, b, loader, args.n_samples)
        for name in MEASURES:
            matrix, rows, cols = result_matrix(report.results, name)
            worst = max(worst, abs(values[name] - matrix[rows.index(a), cols.index(b)]))
    per_pair = (time.perf_counter() - started) / len(timed)
    slow = per_pair * len(pairs)
    label = "measured" if len(timed) == len(pairs) else f"extrapolated from {len(timed)} pairs"
    print(
        f"original way (re-extract both networks per pair, full forward with hooks, no no_grad): {slow:.1f} s "
        f"({label}; {per_pair:.2f} s per pair)"
    )
    print(f"largest difference between the two matrices: {worst:.2e}")
    print(f"speed-up: {slow / fast:.1f}x")
    assert worst < 1e-6, "the two ways disagree"


if __name__ == "__main__":
    with torch.inference_mode(False):
        np.set_printoptions(precision=4)
        main()
