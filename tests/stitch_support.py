"""Tiny donor networks for the stitching tests, trained once per test process on the offline ``digits``
set (a few seconds), and helpers shared by the ``test_stitch*`` files."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from stitchkit.data import get_dataset
from stitchkit.models import get_model
from stitchkit.stitching import grid_run

SHAPE = (1, 28, 28)
RESNET = dict(width=4)
VIT = dict(depth=2, embed_dim=16, num_heads=2)
QUICK = dict(dataset="digits", workers=0, progress=False, verbose=False, device="cpu")


def resnet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_model("resnet18", num_classes=10, in_channels=1, input_size=SHAPE[1:], **RESNET).eval()


def vit(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_model("vit_tiny_patch4_32", num_classes=10, in_channels=1, input_size=SHAPE[1:], **VIT).eval()


@functools.cache
def _trained_state(kind: str, seed: int) -> dict:
    model = resnet(seed) if kind == "resnet" else vit(seed)
    data = get_dataset("digits", "train", augment=False)
    x = torch.stack([data[i][0] for i in range(640)])
    y = torch.tensor([data[i][1] for i in range(640)])
    epochs, lr, batch = (3, 1e-2, 32) if kind == "resnet" else (6, 3e-3, 16)  # ~87% and ~40% test accuracy
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(640, generator=gen).split(batch):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def trained_resnet(seed: int = 0) -> torch.nn.Module:
    """A width-4 ResNet-18 trained briefly on digits (well above chance), a fresh object per call."""
    model = resnet(seed)
    model.load_state_dict(_trained_state("resnet", seed))
    return model.eval()


def trained_vit(seed: int = 0) -> torch.nn.Module:
    model = vit(seed)
    model.load_state_dict(_trained_state("vit", seed))
    return model.eval()


def write_tiny_cifar10(root: Path, n_per_batch: int = 4, n_test: int = 8) -> None:
    """CIFAR-10 in torchvision's layout with a handful of random images (for the original's commands)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else n_per_batch
        entry = {
            "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, size=n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


def interrupt_grouped_training(monkeypatch, after_epoch: int, run) -> None:
    """Call ``run()`` with its grouped TLM training stopped (KeyboardInterrupt) right after the checkpoint of
    epoch ``after_epoch`` is written, as a killed process would leave it; afterwards checkpoints save normally."""
    real_save = grid_run.save_grouped_checkpoint

    def save_then_stop(path, identity, state):
        real_save(path, identity, state)
        if state.epoch == after_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(grid_run, "save_grouped_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(grid_run, "save_grouped_checkpoint", real_save)
