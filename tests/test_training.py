"""The one training loop, optimizers/schedules, and base-model training: determinism, resume, outputs."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from stitchkit.errors import StitchkitError
from stitchkit.models.checkpoint import load_checkpoint
from stitchkit.models.loading import load_model
from stitchkit.training import (
    LoopSettings,
    OptimConfig,
    TrainingDiverged,
    build_optimizer,
    build_scheduler,
    fit,
    run_epochs,
)
from stitchkit.training.base import TrainSettings, evaluate_model, train_model
from stitchkit.training.loop import check_finite
from stitchkit.utils.run_options import RunOptions


def settings(tmp_path, name="run", **kw):
    base = dict(
        model="resnet18",
        save_dir=str(tmp_path / name),
        dataset="digits",
        epochs=1,
        batch_size=32,
        workers=0,
        model_options={"width": 4},
        train_subset=96,
        progress=False,
        verbose=False,
        device="cpu",
    )
    base.update(kw)
    return TrainSettings(**base)


def state(path):
    return load_checkpoint(path).state_dict


def test_fit_lowers_the_loss_on_a_separable_problem():
    torch.manual_seed(0)
    x = torch.randn(256, 5)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = nn.Linear(5, 2)
    opt = build_optimizer(model.parameters(), OptimConfig(lr=0.05))
    loop = LoopSettings(epochs=5, device=torch.device("cpu"), progress=False, verbose=False)
    history = fit(model, loader, opt, loop, val_loader=loader)
    assert history[-1].train["loss"] < history[0].train["loss"]
    assert history[-1].val["acc"] > 0.9


class _Sampler:
    def __init__(self):
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


class _Batches(list):
    def __init__(self):
        super().__init__([0])
        self.sampler = _Sampler()


def test_the_epoch_scaffold_seeds_each_epoch_and_steps_the_schedule_once_per_epoch():
    """run_epochs: epoch e draws from torch's generator seeded with seed · 100003 + e (the same numbers
    whether the run starts at 0 or resumes at e), tells the sampler its epoch, and steps a per-epoch
    schedule after each epoch; the seconds handed on are non-negative."""
    model = nn.Linear(2, 2)
    opt = build_optimizer(model.parameters(), OptimConfig(lr=1.0, scheduler="step", step_size=1, gamma=0.5))
    sched = build_scheduler(opt, OptimConfig(lr=1.0, scheduler="step", step_size=1, gamma=0.5), 3, [0])
    batches, seen = _Batches(), []

    def one_epoch(epoch, per_step):
        assert per_step is None  # a per-epoch schedule is not stepped per optimizer step
        opt.step()  # (no gradients: nothing changes)
        return torch.rand(()).item(), opt.param_groups[0]["lr"]

    run_epochs(
        LoopSettings(epochs=3, device="cpu", seed=7),
        batches,
        sched,
        one_epoch,
        lambda epoch, out, seconds: seen.append((epoch, *out, seconds >= 0)),
    )
    expected_draws = [torch.rand((), generator=torch.Generator().manual_seed(7 * 100_003 + e)).item() for e in range(3)]
    assert [row[0] for row in seen] == [0, 1, 2] and batches.sampler.epochs == [0, 1, 2]
    assert [row[1] for row in seen] == expected_draws
    assert [row[2] for row in seen] == [1.0, 0.5, 0.25] and all(row[3] for row in seen)
    resumed = []
    run_epochs(
        LoopSettings(epochs=3, device="cpu", seed=7, start_epoch=2),
        _Batches(),
        None,
        lambda epoch, per_step: torch.rand(()).item(),
        lambda epoch, out, seconds: resumed.append((epoch, out)),
    )
    assert resumed == [(2, expected_draws[2])]


def test_a_diverged_loss_names_the_first_bad_entry():
    check_finite(torch.tensor([0.5, 1.0]), 0, 0, ["a", "b"])  # finite: nothing happens
    with pytest.raises(TrainingDiverged, match=r"the loss of b became inf at epoch 2, batch 4; lower the"):
        check_finite(torch.tensor([0.5, float("inf"), float("nan")]), 1, 3, ["a", "b", "c"])
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at epoch 1, batch 1"):
        check_finite(torch.tensor(float("nan")), 0, 0)


def test_nan_loss_stops_with_a_clear_message():
    model = nn.Linear(2, 2)
    loader = [(torch.full((4, 2), float("nan")), torch.zeros(4, dtype=torch.long))]
    opt = build_optimizer(model.parameters(), OptimConfig())
    with pytest.raises(TrainingDiverged, match="diverged.*learning rate"):
        fit(model, loader, opt, LoopSettings(epochs=1, device=torch.device("cpu"), progress=False, verbose=False))


@pytest.mark.parametrize(
    "cfg,epochs,expected",
    [
        (OptimConfig(milestones=[2, 4]), 6, [1, 1, 0.1, 0.1, 0.01, 0.01]),  # the original's -rlre
        (OptimConfig(scheduler="step", step_size=2, gamma=0.5), 5, [1, 1, 0.5, 0.5, 0.25]),
        (
            OptimConfig(scheduler="cosine"),
            4,
            [1, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2],
        ),
    ],
)
def test_schedules_step_per_epoch(cfg, epochs, expected):
    p = nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], cfg)
    sched = build_scheduler(opt, cfg, epochs)
    seen = []
    for _ in range(epochs):
        seen.append(opt.param_groups[0]["lr"] / cfg.lr)
        opt.step()
        sched.step()
    assert seen == pytest.approx(expected)


@pytest.mark.parametrize(
    "cfg,match",
    [
        (OptimConfig(optimizer="lbfgs"), "unknown optimizer"),
        (OptimConfig(scheduler="warmup9"), "unknown scheduler"),
        (OptimConfig(lr=0), "learning rate"),
        (OptimConfig(milestones=[0]), "-rlre"),
        (OptimConfig(nesterov=True), "Nesterov"),
    ],
)
def test_bad_optimisation_settings(cfg, match):
    with pytest.raises(StitchkitError, match=match):
        build_optimizer([nn.Parameter(torch.zeros(1))], cfg)


def test_sgd_momentum_is_an_option():
    opt = build_optimizer(
        [nn.Parameter(torch.zeros(1))], OptimConfig(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True)
    )
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"]


def test_training_writes_the_original_outputs_and_a_final_checkpoint(tmp_path):
    result = train_model(settings(tmp_path, epochs=2, save_frequency=1))
    out = tmp_path / "run"
    for name in [
        "model_1.pt",
        "model_2.pt",
        "training_logs.csv",
        "config.txt",
        "config.json",
        "last.pt",
        "final.pt",
        "metrics.json",
    ]:
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "training_logs.csv").open()))
    assert len(rows) == 2 and list(rows[0])[:4] == ["train_acc", "train_loss", "val_acc", "val_loss"]
    # model_<e>.pt is a bare state_dict (readable by the original's loaders) ...
    bare = torch.load(out / "model_2.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in bare.values())
    # ... that stitchkit still loads by path alone, like final.pt
    m1, _ = load_model(out / "model_2.pt")
    m2, ckpt = load_model(out / "final.pt")
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert ckpt.dataset == "digits" and ckpt.metrics["test_acc"] == result["metrics"]["test_acc"]
    config = json.loads((out / "config.json").read_text())
    assert config["model_spec"]["options"]["width"] == 4 and config["stitchkit_version"]


def test_seeded_cpu_runs_give_identical_weights(tmp_path):
    train_model(settings(tmp_path, "a", seed=3))
    train_model(settings(tmp_path, "b", seed=3))
    train_model(settings(tmp_path, "c", seed=4))
    a, b, c = (state(tmp_path / n / "final.pt") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_continues_exactly(tmp_path):
    train_model(settings(tmp_path, "straight", epochs=2, seed=1))
    train_model(settings(tmp_path, "resumed", epochs=1, seed=1))
    train_model(settings(tmp_path, "resumed", epochs=2, seed=1, resume=str(tmp_path / "resumed" / "last.pt")))
    a, b = state(tmp_path / "straight" / "final.pt"), state(tmp_path / "resumed" / "final.pt")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a if a[k].is_floating_point())
    rows = list(csv.DictReader((tmp_path / "resumed" / "training_logs.csv").open()))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2]


def test_an_existing_run_is_not_overwritten_silently(tmp_path):
    train_model(settings(tmp_path))
    with pytest.raises(StitchkitError, match="already holds a training run"):
        train_model(settings(tmp_path))
    with pytest.raises(StitchkitError, match="already been trained"):
        train_model(settings(tmp_path, resume=str(tmp_path / "run" / "last.pt")))


@pytest.mark.parametrize(
    "kw,match",
    [({"save_frequency": 0}, "save frequency"), ({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch size")],
)
def test_bad_settings(tmp_path, kw, match):
    with pytest.raises(StitchkitError, match=match):
        train_model(settings(tmp_path, **kw))


def test_evaluate_matches_the_training_run(tmp_path):
    result = train_model(settings(tmp_path))
    quiet = RunOptions(device="cpu", workers=0, progress=False)
    ev = evaluate_model(str(tmp_path / "run" / "final.pt"), run=quiet)
    assert ev["dataset"] == "digits"
    assert ev["acc"] == pytest.approx(result["metrics"]["test_acc"]) and "hits" not in ev
    kept = evaluate_model(str(tmp_path / "run" / "final.pt"), run=quiet, batch_size=100, keep_hits=True)
    assert (
        kept["hits"].dtype == np.uint8
        and kept["hits"].size == kept["n"]
        and kept["hits"].mean() == pytest.approx(kept["acc"], abs=1e-12)
    )
    with pytest.raises(StitchkitError, match="channels"):
        evaluate_model(str(tmp_path / "run" / "final.pt"), run=quiet, dataset="cifar10")
