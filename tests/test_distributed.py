"""`stitchkit train` under torchrun: two gloo processes on the CPU, on a tiny ImageFolder tree laid out
like ImageNet, with the ImageNet preset."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image


def make_imagefolder(root, per_class=3):
    rng = np.random.default_rng(0)
    for split in ("training_data", "validation_data"):
        for cls in ("n01", "n02"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_torchrun_with_two_gloo_processes(tmp_path):
    make_imagefolder(tmp_path / "data")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "stitchkit",
        "train",
        "small_cnn",
        "--preset",
        "imagenet",
        "-data",
        str(tmp_path / "data"),
        "-e",
        "2",
        "-b",
        "2",
        "-workers",
        "0",
        "-gpu",
        "-1",
        "--width",
        "4",
        "--no-progress",
        "-dir",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test accuracy") == 1  # only rank 0 reports
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    settings = config["settings"]["optim"]
    # the ImageNet recipe: SGD, momentum 0.9, wd 1e-4, step decay every 30 epochs, lr 0.1 per 256 images (2 x 2 here)
    assert (
        settings["optimizer"],
        settings["momentum"],
        settings["weight_decay"],
        settings["scheduler"],
        settings["step_size"],
    ) == ("sgd", 0.9, 1e-4, "step", 30)
    assert settings["lr"] == pytest.approx(0.1 * 4 / 256)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["test_samples"] == 6  # every validation image exactly once
    assert metrics["test_top5"] is not None
    state = torch.load(out / "final.pt", weights_only=True)["state_dict"]
    assert not any(k.startswith("module.") for k in state)
    assert (out / "model_2.pt").is_file() and (out / "last.pt").is_file()
