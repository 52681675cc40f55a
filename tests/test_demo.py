"""The demo's shipped networks are what the documented command (`make demo-networks`) makes."""

from __future__ import annotations

import hashlib
import re
import shlex
import tomllib
from pathlib import Path

import torch

from stitchkit.cli import build_parser
from stitchkit.cli.common import model_options
from stitchkit.cli.train import resolve
from stitchkit.study import study_status
from stitchkit.study.config import load_config
from stitchkit.study.plan import plan_study

REPO = Path(__file__).parent.parent
DEMO = REPO / "examples" / "demo.toml"
SEEDS = REPO / "examples" / "seeds.toml"


def _recipe_command() -> list[str]:
    """The `stitchkit train` arguments of the Makefile's demo-networks target (seed left as $$s)."""
    text = (REPO / "Makefile").read_text()
    target = text[text.index("demo-networks: setup") :]
    command = re.search(r"stitchkit train (.*?) \|\| exit 1", target.replace("\\\n", " "), re.S).group(1)
    return shlex.split(command)


def test_the_demo_checkpoints_were_trained_with_the_makefile_recipe(monkeypatch):
    """The demo's two networks and the four of examples/seeds.toml (the demo's and two more)."""
    monkeypatch.chdir(REPO)
    paths = tomllib.loads(DEMO.read_text())["networks"]["checkpoints"]
    assert len(paths) == 2
    seeds = tomllib.loads(SEEDS.read_text())["networks"]["checkpoints"]
    assert len(seeds) == 4 and seeds[:2] == paths
    target = (REPO / "Makefile").read_text().split("demo-networks: setup", 1)[1]
    assert re.search(r"for s in ([\d ]+); do", target).group(1).split() == [
        str(i) for i in range(len(seeds))
    ]  # make re-creates them all
    for seed, path in enumerate(seeds):
        args = build_parser().parse_args(["train"] + [a.replace("$$s", str(seed)) for a in _recipe_command()])
        recipe = resolve(args)
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        training = ckpt["training"]
        assert ckpt["dataset"] == recipe["dataset"] == "fashion" and training["model"] == args.model_type
        assert (
            training["model_options"] == model_options(args) == {"width": 32} and training["seed"] == args.seed == seed
        )
        assert (training["epochs"], training["batch_size"], training["optim"]["lr"]) == (
            recipe["epochs"],
            recipe["batch_size"],
            recipe["lr"],
        )
        assert training["train_subset"] == args.train_subset and training["augment"] is False and args.augment is False
        assert f"seed{seed}.pt" in path and Path(path).stat().st_size < 12e6


def test_the_demo_store_records_the_checkpoints_content_hashes(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    status = study_status(DEMO, tmp_path / "demo")
    assert status["by_kind"]["network"]["pending"] == 2
    units = plan_study(load_config(DEMO), tmp_path / "demo")
    recorded = [u.params["sha256"] for u in units if u.kind == "network"]
    files = [
        hashlib.sha256(Path(p).read_bytes()).hexdigest()
        for p in tomllib.loads(DEMO.read_text())["networks"]["checkpoints"]
    ]
    assert len(recorded) == 2 and all(
        len(r) >= 16 and f.startswith(r) for r, f in zip(recorded, files)
    )  # a prefix of the file's SHA-256
