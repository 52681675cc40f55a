"""The GPU check (run by ``benchmarks/gpu_check.sh``): every CUDA path once, checked against the CPU, and
the paper's grid timed.

Steps (each prints one ``[name] ...`` line, then ``PASS``/``FAIL``; the last line is a summary):

1. data: ``digits`` (offline, scikit-learn's) written as a uint8 ``npz:`` dataset, so that the batched
   device path serves it; and a CIFAR-shaped random uint8 set for the timing.
2. train: base training of a ResNet-18 with ``--amp`` on CUDA and in float32 on the CPU, same seed:
   the test accuracies agree within noise.
3. dm: a direct-matching grid on CUDA and on the CPU from the same checkpoints: the fitted maps agree
   to float tolerance, the accuracies within a few test images.
4. tlm: a grouped TLM grid epoch on CUDA against the same grid pair by pair on CUDA (the same
   stitches to float tolerance), and against the CPU (accuracy within noise).
5. detectors: energy detector training for two layers on CUDA and on the CPU: both separate the ID
   test set from the sanity set.
6. ddp: ``torchrun`` base training on every visible GPU.
7. timing: one grouped TLM epoch of the paper's 8 × 8 grid (ResNet-18 width 64, 3×32×32, batch 256),
   random weights and data, in float32 and with ``--amp`` (bf16), and the projection for 30 epochs.

``--smoke`` runs the same steps tiny and on the CPU alone (to test the script without a GPU).
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

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS: list[tuple[str, bool, str]] = []


def report(name: str, ok: bool, text: str) -> None:
    RESULTS.append((name, ok, text))
    print(f"[{name}] {text} -> {'PASS' if ok else 'FAIL'}", flush=True)


def write_digits_npz(path: Path) -> str:
    from stitchkit.data import get_dataset

    arrays = {}
    for split in ("train", "test"):
        data = get_dataset("digits", split, augment=False)
        x = torch.stack([data[i][0] for i in range(len(data))])  # N×1×28×28 in [0, 1]
        arrays[f"x_{split}"] = np.round(x[:, 0].numpy() * 255).astype(np.uint8)
        arrays[f"y_{split}"] = np.array([data[i][1] for i in range(len(data))], dtype=np.int64)
    np.savez(path, **arrays)
    return f"npz:{path}"


def write_random_cifar(path: Path, n_train: int, n_test: int) -> str:
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train),
        x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test),
    )
    return f"npz:{path}"


def train(dataset: str, out: Path, device: str, amp: bool, seed: int, epochs: int, width: int) -> dict:
    from stitchkit.training.base import TrainSettings, train_model
    from stitchkit.training.optim import OptimConfig

    settings = TrainSettings(
        model="resnet18",
        save_dir=str(out),
        dataset=dataset,
        epochs=epochs,
        batch_size=64,
        optim=OptimConfig(lr=2e-3),
        seed=seed,
        workers=0,
        device=device,
        amp=amp,
        model_options={"width": width},
        progress=False,
        verbose=False,
        save_frequency=epochs,
    )
    return train_model(settings)


def step_train(args, dataset: str, tmp: Path) -> list[str]:
    gpu, cpu = args.device, "cpu"
    result_gpu = train(
        dataset, tmp / "train_gpu", gpu, amp=gpu.startswith("cuda"), seed=0, epochs=args.epochs, width=args.width
    )
    result_cpu = train(dataset, tmp / "train_cpu", cpu, amp=False, seed=0, epochs=args.epochs, width=args.width)
    a, b = result_gpu["metrics"]["test_acc"], result_cpu["metrics"]["test_acc"]
    report(
        "train",
        abs(a - b) <= 0.06 and a > 0.5,
        f"base training, {args.epochs} epochs: {gpu} with AMP {a:.4f} "
        f"({result_gpu['metrics']['seconds']:.1f} s), CPU float32 {b:.4f} ({result_cpu['metrics']['seconds']:.1f} s)",
    )
    second = train(dataset, tmp / "train_cpu_s1", cpu, amp=False, seed=1, epochs=args.epochs, width=args.width)
    return [result_cpu["final"], second["final"]]


def step_dm(args, dataset: str, checkpoints: list[str], tmp: Path) -> None:
    from stitchkit.stitching import StitchSettings, stitch_grid

    common = dict(
        stitching_type="rc2c_pre", init="pinv", epochs=0, dataset=dataset, workers=0, progress=False, verbose=False
    )
    runs = {}
    for label, device in (("gpu", args.device), ("cpu", "cpu")):
        start = time.perf_counter()
        runs[label] = (
            stitch_grid(
                *checkpoints, "all", "all", StitchSettings(**common, device=device), save_dir=tmp / f"dm_{label}"
            ),
            time.perf_counter() - start,
        )
    (gpu_runs, t_gpu), (cpu_runs, t_cpu) = runs["gpu"], runs["cpu"]
    worst_w, worst_acc = 0.0, 0.0
    for g, c in zip(gpu_runs, cpu_runs):
        wg = torch.load(Path(g.run_dir) / "final_model.pt", weights_only=True)
        wc = torch.load(Path(c.run_dir) / "final_model.pt", weights_only=True)
        for key in wg:
            worst_w = max(worst_w, float((wg[key] - wc[key]).abs().max() / wc[key].abs().max().clamp_min(1e-12)))
        worst_acc = max(worst_acc, abs(g.accuracy - c.accuracy))
    n = gpu_runs[0].n_test
    report(
        "dm",
        worst_w < 1e-3 and worst_acc <= 3 / n,
        f"8x8 DM grid on {args.device} ({t_gpu:.1f} s) vs CPU ({t_cpu:.1f} s): largest relative "
        f"weight difference {worst_w:.1e}, largest accuracy difference {worst_acc:.4f} ({worst_acc * n:.0f} of {n} "
        f"images)",
    )


def step_tlm(args, dataset: str, checkpoints: list[str], tmp: Path) -> None:
    from stitchkit.stitching import StitchSettings, stitch_grid
    from stitchkit.training.optim import OptimConfig

    common = dict(
        stitching_type="rc2c_pre",
        init="rand",
        epochs=1,
        batch_size=64,
        optim=OptimConfig(lr=1e-3),
        dataset=dataset,
        workers=0,
        progress=False,
        verbose=False,
    )
    layers = "layer1.0,layer2.1,layer3.1,layer4.1"
    timed = {}
    for label, extra in (
        ("grouped", dict(device=args.device)),
        ("per-pair", dict(device=args.device, grouping="per-pair")),
        ("cpu", dict(device="cpu")),
    ):
        start = time.perf_counter()
        timed[label] = (
            stitch_grid(*checkpoints, layers, layers, StitchSettings(**common, **extra)),
            time.perf_counter() - start,
        )
    grouped, per_pair, cpu = (timed[k][0] for k in ("grouped", "per-pair", "cpu"))
    same = max(abs(a.accuracy - b.accuracy) for a, b in zip(grouped, per_pair))
    noise = max(abs(a.accuracy - b.accuracy) for a, b in zip(grouped, cpu))
    mean = sum(r.accuracy for r in grouped) / len(grouped)
    report(
        "tlm",
        same <= 0.02 and noise <= 0.1,
        f"4x4 TLM grid epoch on {args.device}: grouped {timed['grouped'][1]:.1f} s vs per pair "
        f"{timed['per-pair'][1]:.1f} s, largest accuracy difference {same:.4f}; vs CPU ({timed['cpu'][1]:.1f} s) "
        f"{noise:.4f}; mean accuracy {mean:.3f}",
    )


def step_detectors(args, dataset: str, checkpoints: list[str], tmp: Path) -> None:
    from stitchkit.models.loading import load_model
    from stitchkit.ood import DetectorRegistry
    from stitchkit.ood.evaluate import DetectorCheckSettings, check_detectors
    from stitchkit.ood.train import DetectorTrainConfig, train_detectors_for_checkpoint

    aurocs = {}
    for label, device in (("gpu", args.device), ("cpu", "cpu")):
        config = DetectorTrainConfig(
            save_dir=str(tmp / f"det_{label}"),
            model_options={"width": 4},
            dataset=dataset,
            epochs=args.epochs,
            batch_size=64,
            ft_ood_dataset="noise",
            ft_epochs=1,
            ft_samples=500,
            final_save_dir=str(tmp / f"fdir_{label}"),
            device=device,
            workers=0,
            progress=False,
            verbose=False,
        )
        start = time.perf_counter()
        train_detectors_for_checkpoint(checkpoints[1], None, ["layer2.0", "layer4.0"], config)
        seconds = time.perf_counter() - start
        model = load_model(checkpoints[1])[0].to(device).eval()
        settings = DetectorCheckSettings(sanity_dataset="noise", device=device)
        check = check_detectors(
            model,
            ["layer2.0", "layer4.0"],
            settings,
            id_dataset=dataset,
            registry=DetectorRegistry(str(tmp / f"fdir_{label}")),
            model_path=checkpoints[1],
        )
        aurocs[label] = ([check.metrics[layer]["energy"].auroc for layer in ("layer2.0", "layer4.0")], seconds)
    (gpu_auc, t_gpu), (cpu_auc, t_cpu) = aurocs["gpu"], aurocs["cpu"]
    report(
        "detectors",
        min(gpu_auc) > 0.8 and min(cpu_auc) > 0.8,
        f"energy detectors for 2 layers on {args.device} ({t_gpu:.1f} s): "
        f"AUROC vs noise {', '.join(f'{v:.3f}' for v in gpu_auc)}; CPU ({t_cpu:.1f} s): "
        f"{', '.join(f'{v:.3f}' for v in cpu_auc)}",
    )


def step_ddp(args, dataset: str, tmp: Path) -> None:
    gpus = torch.cuda.device_count() if args.device.startswith("cuda") else 2
    device = [] if args.device.startswith("cuda") else ["-gpu", "-1"]
    cmd = [
        "torchrun",
        "--standalone",
        f"--nproc_per_node={gpus}",
        "-m",
        "stitchkit",
        "train",
        "resnet18",
        "-d",
        dataset,
        "--width",
        str(args.width),
        "-e",
        "1",
        "-b",
        "64",
        "-workers",
        "0",
        "--no-augment",
        "-dir",
        str(tmp / "ddp"),
        "--no-progress",
        *device,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    metrics = json.loads((tmp / "ddp" / "metrics.json").read_text()) if (tmp / "ddp" / "metrics.json").is_file() else {}
    ok = proc.returncode == 0 and metrics.get("world_size") == gpus
    tail = proc.stderr.strip().splitlines()[-1] if proc.returncode and proc.stderr.strip() else ""
    report(
        "ddp",
        ok,
        f"torchrun DDP on {gpus} process(es) ({seconds:.1f} s): world size {metrics.get('world_size')}, "
        f"test accuracy {metrics.get('test_acc', math.nan):.4f} {tail}",
    )


def step_timing(args, tmp: Path) -> None:
    from stitchkit.models import get_model
    from stitchkit.stitching import StitchSettings, stitch_grid

    n_train, n_test = args.timing_train, args.timing_test
    dataset = write_random_cifar(tmp / "random_cifar.npz", n_train, n_test)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(
            get_model("resnet18", num_classes=10, in_channels=3, input_size=(32, 32), width=args.timing_width).eval()
        )
    lines, ok = [], True
    for amp in (False, True):
        settings = StitchSettings(
            stitching_type="rc2c_pre",
            init="rand",
            epochs=1,
            batch_size=256,
            dataset=dataset,
            device=args.device,
            amp=amp,
            workers=0,
            progress=False,
            verbose=False,
        )
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        results = stitch_grid(*models, "all", "all", settings)
        seconds = time.perf_counter() - start
        epoch = sum(r.seconds["grouped_train"] for r in results[:1])
        scale = 50_000 / n_train  # CIFAR-10's training split
        per_epoch = epoch * scale
        ok = ok and all(math.isfinite(r.accuracy) for r in results)
        lines.append(
            f"{'bf16 AMP' if amp else 'float32'}: {seconds:.1f} s in all ({epoch:.1f} s training {n_train} images "
            f"with validation on "
            f"{n_test}, group size {results[0].execution['group_size']}); 50,000 images: ~{per_epoch:.0f} s per epoch, "
            f"30 epochs ~{30 * per_epoch / 3600:.2f} h"
        )
    report(
        "timing",
        ok,
        f"the paper's 8x8 grid, ResNet-18 width {args.timing_width} on 3x32x32, batch 256: " + " | ".join(lines),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU alone (tests the script)")
    p.add_argument("--only", nargs="*", default=None, help="run these steps only")
    args = p.parse_args()
    cuda = torch.cuda.is_available() and not args.smoke
    args.device = "cuda:0" if cuda else "cpu"
    args.width = 8 if args.smoke else 16
    args.epochs = 3
    args.timing_width = 8 if args.smoke else 64
    args.timing_train, args.timing_test = (256, 128) if args.smoke else (10_000, 2_000)
    print(
        f"gpu check: torch {torch.__version__}, CUDA {torch.version.cuda}, device "
        f"{torch.cuda.get_device_name(0) if cuda else 'none (CPU only)'}, "
        f"{torch.cuda.device_count() if cuda else 0} GPU(s), {os.cpu_count()} CPU cores",
        flush=True,
    )
    if not cuda and not args.smoke:
        print("no GPU: nothing to check (use --smoke to test the script on the CPU)")
        sys.exit(1)
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    dataset = write_digits_npz(tmp / "digits.npz")
    wanted = set(args.only or ["train", "dm", "tlm", "detectors", "ddp", "timing"])
    started = time.perf_counter()
    checkpoints = step_train(args, dataset, tmp) if wanted & {"train", "dm", "tlm", "detectors"} else []
    for name, fn in (("dm", step_dm), ("tlm", step_tlm), ("detectors", step_detectors)):
        if name in wanted:
            fn(args, dataset, checkpoints, tmp)
    if "ddp" in wanted:
        step_ddp(args, dataset, tmp)
    if "timing" in wanted:
        step_timing(args, tmp)
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(
        f"summary: {len(RESULTS) - len(failed)} of {len(RESULTS)} checks "
        f"passed{' (failed: ' + ', '.join(failed) + ')' if failed else ''}; {time.perf_counter() - started:.0f} s"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
