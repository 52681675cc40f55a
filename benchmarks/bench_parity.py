"""Parity figures: where stitchkit's numbers differ from the original's, measured on two trained networks.

Not a timing benchmark: it measures *values*. Two CIFAR-style ResNet-18s (``--width``, default 16) are
trained here on Fashion-MNIST (offline, seeds 0 and 1, ``--epochs`` default 1), then:

1. **Direct matching, the original's cutoff.** For a few layer pairs, the same stitch with stitchkit's
   solver (float64 least squares, minimum-norm) and with ``--dm-solver original`` (the original's
   float32 ``torch.linalg.pinv([X, 1])`` with torch's default cutoff ``eps32 · max(rows, columns)`` on
   the K = 100 fit images in one batch): how many singular values of ``[X, 1]`` the cutoff drops, the
   in-sample residual of each installed map, the original's *reported* residual (its second pinv with
   no cutoff), and the test residuals and accuracies.
2. **Similarity indices in float32.** The original computes CKA, PWCCA and the Procrustes distance with
   numpy on float32 activations (seed spec 1.7); stitchkit in float64. On the same 1000 test images'
   activations, the spec's formulas are emulated here with numpy in float32 and in float64 (the float64
   emulation is checked against stitchkit's own values), and for Procrustes each float32 stage is
   switched on alone: the centring and Frobenius normalisation (float32 norms), the nuclear norm
   (float32 product and SVD), and the terms ‖A‖² + ‖B‖² of the float32-normalised matrices in place of
   their exact value 2.

    python benchmarks/bench_parity.py                  # about 5 minutes on 2 CPU cores
    python benchmarks/bench_parity.py --epochs 2 --json parity.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stitchkit.activations.extract import ExtractionSettings, extract_activations, sample_subset
from stitchkit.data import get_dataset
from stitchkit.models.loading import load_model
from stitchkit.similarity import compute
from stitchkit.stitching import StitchSettings, stitch_pair
from stitchkit.training.base import TrainSettings, train_model
from stitchkit.training.optim import OptimConfig

DM_PAIRS = [
    ("layer2.0", "layer2.0", "c2c"),
    ("layer3.0", "layer3.0", "c2c"),
    ("layer4.1", "layer4.1", "c2c"),
    ("layer4.1", "layer1.0", "rc2c_pre"),
]
SIM_PAIRS = [
    ("layer1.0", "layer1.0"),
    ("layer2.0", "layer2.0"),
    ("layer3.1", "layer3.1"),
    ("layer4.1", "layer4.1"),
    ("layer1.0", "layer4.1"),
]


# -- the original's similarity computations (seed spec 1.7), in a chosen numpy dtype ------------------------


def _features_by_samples(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The original's data points for PWCCA and Procrustes, as features × samples: every spatial
    position when both conv shapes are equal, else the globally pooled maps."""
    if x.shape[1:] == y.shape[1:]:
        rows = lambda a: a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])  # noqa: E731
    else:
        rows = lambda a: a.mean(axis=(2, 3))  # noqa: E731
    return rows(x).T, rows(y).T


def _centre_normalise(a: np.ndarray, dtype) -> np.ndarray:
    a = a.astype(dtype)
    a = a - a.mean(axis=1, keepdims=True)
    return a / np.linalg.norm(a)


def cka_original(x: np.ndarray, y: np.ndarray, dtype) -> float:
    """Linear CKA from centred Gram matrices of the channel-major flattened activations."""

    def centred_gram(a):
        a = a.reshape(a.shape[0], -1).astype(dtype)
        k = a @ a.T
        means = k.mean(axis=0)
        means = means - means.mean() / 2
        return k - means[:, None] - means[None, :]

    kc, lc = centred_gram(x), centred_gram(y)
    return float(np.sum(kc * lc) / (np.linalg.norm(kc) * np.linalg.norm(lc)))


def pwcca_original(x: np.ndarray, y: np.ndarray, dtype) -> float:
    """PWCCA distance with Ding et al.'s conventions: whitening by eigendecomposition, weights from X."""
    a, b = (_centre_normalise(m, dtype) for m in _features_by_samples(x, y))

    def inv_sqrt(m):
        evals, evecs = np.linalg.eigh(m)
        evals = np.clip(evals, 0, None)
        inv = np.zeros_like(evals)
        inv[evals > 0] = 1 / np.sqrt(evals[evals > 0])
        return (evecs * inv) @ evecs.T

    wa, wb = inv_sqrt(a @ a.T), inv_sqrt(b @ b.T)
    u, rho, _ = np.linalg.svd(wa @ (a @ b.T) @ wb)
    variates = (u.T @ wa @ a).T  # samples × features
    weights = np.abs(variates.T @ a.T).sum(axis=1)
    weights = weights / weights.sum()
    k = len(rho)
    return float(1 - np.sum(weights[:k] * rho))


def procrustes_original(
    x: np.ndarray, y: np.ndarray, *, norms=np.float32, svd=np.float32, terms: str = "computed"
) -> float:
    """‖A‖² + ‖B‖² − 2‖ABᵀ‖_* on centred, Frobenius-normalised A, B (features × samples).

    ``norms``: dtype of the centring and normalisation; ``svd``: dtype of the product ABᵀ and its SVD;
    ``terms``: ``"computed"`` (‖A‖² + ‖B‖² of the normalised matrices, as the formula reads) or
    ``"exact"`` (their value 2).
    """
    a, b = (_centre_normalise(m, norms) for m in _features_by_samples(x, y))
    nuclear = np.linalg.norm(a.astype(svd) @ b.astype(svd).T, ord="nuc")
    squares = float(np.linalg.norm(a) ** 2 + np.linalg.norm(b) ** 2) if terms == "computed" else 2.0
    return squares - 2 * float(nuclear)


# -- the run -----------------------------------------------------------------------------------------------


def train_pair(args, root: Path) -> list[str]:
    paths = []
    for seed in (0, 1):
        started = time.perf_counter()
        result = train_model(
            TrainSettings(
                model="resnet18",
                save_dir=str(root / f"net{seed}"),
                dataset="fashion",
                epochs=args.epochs,
                batch_size=128,
                optim=OptimConfig(lr=2e-3),
                seed=seed,
                model_options={"width": args.width},
                train_subset=args.train_subset,
                workers=0,
                device="cpu",
                progress=False,
                verbose=False,
            )
        )
        acc = result["metrics"]["test_acc"]
        print(
            f"network seed {seed}: test accuracy {acc:.4f} after {args.epochs} epoch(s), "
            f"{time.perf_counter() - started:.0f} s"
        )
        paths.append(result["final"])
    return paths


def dm_figures(paths, args) -> list[dict]:
    print(f"\n## 1. Direct matching: stitchkit's least squares vs the original's float32 pinv (K = {args.fit_samples})")
    print(
        "pair | type | rows | columns p+1 | original drops | rtol | in-sample residual stitchkit / original | "
        "original's reported | test residual stitchkit / original (diff) | accuracy stitchkit / original"
    )
    rows = []
    for front_layer, end_layer, kind in DM_PAIRS:
        out = {}
        for solver in ("stitchkit", "original"):
            settings = StitchSettings(
                stitching_type=kind,
                init="pinv",
                epochs=0,
                fit_samples=args.fit_samples,
                test_samples=args.test_samples,
                batch_size=256,
                dataset="fashion",
                device="cpu",
                workers=0,
                progress=False,
                verbose=False,
                dm_solver=solver,
            )
            out[solver] = stitch_pair(paths[0], paths[1], front_layer, end_layer, settings)
        ours, orig = out["stitchkit"], out["original"]
        columns = orig.dm_rank + orig.dm_dropped + 1
        rtol = np.finfo(np.float32).eps * max(orig.n_fit_rows, columns)
        row = {
            "front_layer": front_layer,
            "end_layer": end_layer,
            "type": kind,
            "rows": orig.n_fit_rows,
            "columns": columns,
            "dropped_original": orig.dm_dropped,
            "dropped_stitchkit": ours.dm_dropped,
            "rtol": rtol,
            "fit_residual_stitchkit": ours.dm_fit_residual,
            "fit_residual_original": orig.dm_fit_residual,
            "reported_residual_original": orig.dm_reported_residual,
            "test_residual_stitchkit": ours.residual,
            "test_residual_original": orig.residual,
            "test_residual_batch_mean_stitchkit": ours.residual_batch_mean,
            "test_residual_batch_mean_original": orig.residual_batch_mean,
            "accuracy_stitchkit": ours.accuracy,
            "accuracy_original": orig.accuracy,
        }
        rows.append(row)
        print(
            f"{front_layer} -> {end_layer} | {kind} | {row['rows']} | {columns} | {orig.dm_dropped} | {rtol:.2e} | "
            f"{ours.dm_fit_residual:.6f} / {orig.dm_fit_residual:.6f} | {orig.dm_reported_residual:.6f} | "
            f"{ours.residual:.6f} / {orig.residual:.6f} ({orig.residual - ours.residual:+.2e}) | {ours.accuracy:.4f} "
            f"/ {orig.accuracy:.4f}"
        )
    biggest = max(abs(r["test_residual_original"] - r["test_residual_stitchkit"]) for r in rows)
    print(f"largest |test residual difference| over these pairs: {biggest:.2e}")
    return rows


def similarity_figures(paths, args) -> list[dict]:
    print(f"\n## 2. Similarity indices: the original's float32 numpy vs float64 (first {args.n_samples} test images)")
    models = [load_model(p)[0].eval() for p in paths]
    test = sample_subset(get_dataset("fashion", "test"), args.n_samples)
    layers = sorted({layer for pair in SIM_PAIRS for layer in pair})
    how = ExtractionSettings(device="cpu", batch_size=250)
    acts = [extract_activations(m, layers, test, settings=how) for m in models]
    rows = []
    print(
        "pair | measure | stitchkit float64 | emulation float64 (|diff| to stitchkit) | original float32 | "
        "shift vs stitchkit | float32 − float64 emulation"
    )
    for la, lb in SIM_PAIRS:
        x = np.ascontiguousarray(np.asarray(acts[0][la], dtype=np.float32))
        y = np.ascontiguousarray(np.asarray(acts[1][lb], dtype=np.float32))
        ours = {
            m: compute(m, torch.from_numpy(x), torch.from_numpy(y), policy="auto_original").value
            for m in ("cka", "pwcca", "procrustes")
        }
        emulate = {
            "cka": lambda d: cka_original(x, y, d),
            "pwcca": lambda d: pwcca_original(x, y, d),
            "procrustes": lambda d: procrustes_original(
                x, y, norms=d, svd=d, terms="computed" if d == np.float32 else "exact"
            ),
        }
        for measure, fn in emulate.items():
            f64, f32 = fn(np.float64), fn(np.float32)
            row = {
                "pair": f"{la}/{lb}",
                "measure": measure,
                "stitchkit": ours[measure],
                "emulation_float64": f64,
                "original_float32": f32,
                "shift": f32 - ours[measure],
                "precision_shift": f32 - f64,
            }
            if measure == "procrustes":  # each float32 stage alone
                base = procrustes_original(x, y, norms=np.float64, svd=np.float64, terms="exact")
                row["stage_norms"] = procrustes_original(x, y, norms=np.float32, svd=np.float64, terms="exact") - base
                row["stage_svd"] = procrustes_original(x, y, norms=np.float64, svd=np.float32, terms="exact") - base
                row["stage_terms"] = procrustes_original(x, y, norms=np.float32, svd=np.float64, terms="computed") - (
                    base + row["stage_norms"]
                )
            rows.append(row)
            print(
                f"{la}/{lb} | {measure} | {ours[measure]:.6f} | {f64:.6f} ({abs(f64 - ours[measure]):.1e}) | "
                f"{f32:.6f} | {f32 - ours[measure]:+.2e} | {f32 - f64:+.2e}"
            )
    print("\nProcrustes, each float32 stage alone (shift of the distance):")
    print(
        "pair | float32 norms (centring, normalisation) | float32 SVD (ABᵀ, nuclear norm) | ‖A‖²+‖B‖² of the "
        "float32-normalised matrices − 2 | all (the original)"
    )
    for row in rows:
        if row["measure"] == "procrustes":
            print(
                f"{row['pair']} | {row['stage_norms']:+.2e} | {row['stage_svd']:+.2e} | {row['stage_terms']:+.2e} | "
                f"{row['shift']:+.2e}"
            )
    for measure in ("cka", "pwcca", "procrustes"):
        shifts = [abs(r["shift"]) for r in rows if r["measure"] == measure]
        precision = [abs(r["precision_shift"]) for r in rows if r["measure"] == measure]
        print(
            f"{measure}: |original − stitchkit| from {min(shifts):.1e} to {max(shifts):.1e}; "
            f"|float32 − float64| of the same formulas from {min(precision):.1e} to {max(precision):.1e}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-subset", type=int, default=None, help="train on this many images (default all 60,000)")
    parser.add_argument(
        "--fit-samples", type=int, default=100, help="K of direct matching (the original's default 100)"
    )
    parser.add_argument(
        "--test-samples", type=int, default=None, help="stitch evaluation on the first N test images (default all)"
    )
    parser.add_argument(
        "--n-samples", type=int, default=1000, help="test images of the similarity indices (the original's 1000)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), torch {torch.__version__} ({args.threads} threads), "
        f"numpy {np.__version__}"
    )
    print(f"networks: ResNet-18 width {args.width} on Fashion-MNIST (1×28×28), {args.epochs} epoch(s)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stitchkit-parity-") as tmp:
        paths = train_pair(args, Path(tmp))
        dm = dm_figures(paths, args)
        sim = similarity_figures(paths, args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"config": vars(args), "direct_matching": dm, "similarity": sim}, indent=1, default=float)
        )


if __name__ == "__main__":
    main()
