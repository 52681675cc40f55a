"""Per-step learning-rate schedules: the LR of every optimizer step against its closed form (computed
here with ``math.cos``, independently of stitchkit's code) through the real training loops of base
training, detectors and probes; per-epoch behaviour unchanged; a resumed run follows the same
schedule as one that went straight through; names and ids unchanged unless the schedule changes the
numbers; and the options' validation (library, command line, study keys)."""

import csv
import hashlib
import json
import math

import pytest
import torch
from stitch_support import QUICK, interrupt_grouped_training, trained_resnet
from torch import nn

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.checkpoint import load_checkpoint
from stitchkit.ood import DetectorTrainConfig, train_detectors
from stitchkit.probing import ProbeConfig, probe_activations
from stitchkit.stitching import StitchSettings, grouped, stitch_grid
from stitchkit.stitching.records import WEIGHTS_FILE
from stitchkit.study.config import validate
from stitchkit.training import LoopSettings, OptimConfig, build_optimizer, build_scheduler, fit
from stitchkit.training import base as base_training
from stitchkit.training.base import TrainSettings, train_model
from stitchkit.training.optim import warmup_steps

ONECYCLE_START = 1 / 25  # the one-cycle policy's first LR, a share of the peak


def expected_factor(kind: str, s: int, total: int, warmup: int) -> float:
    """The closed forms of the per-step schedules at step ``s`` of ``total`` with ``warmup`` warm-up steps."""
    decay = (s - warmup) / (total - warmup)
    if kind == "onecycle":
        if s < warmup:
            return ONECYCLE_START + (1 - ONECYCLE_START) * (1 - math.cos(math.pi * s / warmup)) / 2
        return (1 + math.cos(math.pi * decay)) / 2
    if s < warmup:
        return (s + 1) / (warmup + 1)
    return (1 + math.cos(math.pi * decay)) / 2 if kind == "cosine" else 1 - decay


def record_lrs(optimizer: torch.optim.Optimizer, seen: list) -> torch.optim.Optimizer:
    """Record the LR each optimizer step is taken with."""
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    return optimizer


def spy_on(monkeypatch, module, seen: list) -> None:
    """``module.build_optimizer`` records the LRs of every optimizer it builds (one list per optimizer)."""
    real = module.build_optimizer

    def build(params, cfg):
        seen.append([])
        return record_lrs(real(params, cfg), seen[-1])

    monkeypatch.setattr(module, "build_optimizer", build)


def tiny_fit(cfg: OptimConfig, epochs: int, samples: int = 20, batch: int = 5):
    torch.manual_seed(0)
    x, y = torch.randn(samples, 2), torch.randint(0, 2, (samples,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)
    model = nn.Linear(2, 2)
    seen: list[float] = []
    optimizer = record_lrs(build_optimizer(model.parameters(), cfg), seen)
    loop = LoopSettings(epochs=epochs, device=torch.device("cpu"), progress=False, verbose=False)
    history = fit(model, loader, optimizer, loop, scheduler=build_scheduler(optimizer, cfg, epochs, loader))
    return seen, history


# -- the closed forms -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cosine", "linear", "onecycle"])
def test_every_step_of_a_per_step_schedule_follows_its_closed_form(kind):
    # 3 epochs of 4 batches: T = 12 steps, warm-up round(0.25 · 12) = 3 steps
    cfg = OptimConfig(lr=0.1, scheduler=kind, schedule_unit="step", warmup_fraction=0.25)
    seen, history = tiny_fit(cfg, epochs=3)
    assert len(seen) == 12
    assert seen == pytest.approx([0.1 * expected_factor(kind, s, 12, 3) for s in range(12)], rel=1e-12)
    # the LR logged per epoch is that of the epoch's last step
    assert [log.lr for log in history] == [seen[3], seen[7], seen[11]]


def test_a_few_values_by_hand():
    for kind, s, value in [
        ("onecycle", 0, 0.04),
        ("onecycle", 3, 1.0),
        ("cosine", 0, 0.25),
        ("cosine", 3, 1.0),
        ("linear", 11, 1 / 9),
    ]:
        seen, _ = tiny_fit(OptimConfig(lr=1.0, scheduler=kind, schedule_unit="step", warmup_fraction=0.25), epochs=3)
        assert seen[s] == pytest.approx(value, rel=1e-12), (kind, s)
    seen, _ = tiny_fit(OptimConfig(lr=1.0, scheduler="onecycle", schedule_unit="step", warmup_fraction=0.25), epochs=3)
    assert seen[1] == pytest.approx(0.04 + 0.96 * 0.25, rel=1e-12)  # (1 − cos(π/3)) / 2 = 1/4


def test_epoch_counted_decays_keep_counting_epochs_when_stepped_per_step():
    cfg = OptimConfig(lr=1.0, milestones=[1, 2], gamma=0.5, schedule_unit="step", warmup_fraction=0.25)
    seen, _ = tiny_fit(cfg, epochs=3)
    expected = [0.5 ** ((s // 4 >= 1) + (s // 4 >= 2)) * ((s + 1) / 4 if s < 3 else 1) for s in range(12)]
    assert seen == pytest.approx(expected, rel=1e-12)


def test_per_epoch_schedules_are_unchanged_through_the_loop():
    seen, history = tiny_fit(OptimConfig(lr=1.0, scheduler="cosine"), epochs=3)
    per_epoch = [(1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]
    assert seen == pytest.approx([f for f in per_epoch for _ in range(4)], rel=1e-12)
    assert [log.lr for log in history] == pytest.approx(per_epoch, rel=1e-12)


def test_the_warm_up_is_the_rounded_share_of_the_steps():
    assert [warmup_steps(f, 12) for f in (0, 0.25, 0.3, 0.125, 0.04)] == [
        0,
        3,
        4,
        2,
        0,
    ]  # 3.6 → 4, 1.5 → 2 (halves up), 0.48 → 0
    assert warmup_steps(0.29, 100) == 29  # 0.29 · 100 is 28.999… in floating point
    assert warmup_steps(0.9, 1) == 0  # at least one step at the peak


def test_a_per_step_schedule_needs_sized_batches():
    cfg = OptimConfig(scheduler="cosine", schedule_unit="step")
    optimizer = build_optimizer([nn.Parameter(torch.zeros(1))], cfg)
    with pytest.raises(StitchkitError, match="no len"):
        build_scheduler(optimizer, cfg, 2, iter([]))
    assert type(build_scheduler(optimizer, OptimConfig(), 2, iter([]))).__name__ == "LambdaLR"  # per epoch: not needed


@pytest.mark.parametrize(
    "cfg,match",
    [
        (OptimConfig(warmup_fraction=0.1), "needs the schedule unit step"),
        (OptimConfig(scheduler="onecycle"), "onecycle.*schedule unit step"),
        (OptimConfig(scheduler="onecycle", schedule_unit="step"), "warm-up's share"),
        (OptimConfig(schedule_unit="step", warmup_fraction=1.0), r"\[0, 1\)"),
        (OptimConfig(schedule_unit="step", warmup_fraction=-0.1), r"\[0, 1\)"),
        (OptimConfig(schedule_unit="step", warmup_epochs=2), "--warmup-fraction"),
        (OptimConfig(schedule_unit="batch"), "unknown schedule unit 'batch'"),
    ],
)
def test_bad_schedules_are_refused(cfg, match):
    with pytest.raises(StitchkitError, match=match):
        cfg.validate()


# -- base training: per step, and resumed between epochs ---------------------------------------------------


def _settings(tmp_path, name, **kw):
    # 96 images in batches of 32: 3 steps per epoch
    base = dict(
        model="resnet18",
        save_dir=str(tmp_path / name),
        dataset="digits",
        epochs=2,
        batch_size=32,
        workers=0,
        model_options={"width": 4},
        train_subset=96,
        progress=False,
        verbose=False,
        device="cpu",
        seed=1,
        optim=OptimConfig(lr=1e-2, scheduler="cosine", schedule_unit="step", warmup_fraction=0.34),
    )
    base.update(kw)
    return TrainSettings(**base)


def test_base_training_resumed_between_epochs_follows_the_same_per_step_schedule(tmp_path, monkeypatch):
    seen: list[list[float]] = []
    spy_on(monkeypatch, base_training, seen)
    train_model(_settings(tmp_path, "straight"))
    real_save = base_training.save_checkpoint

    def save_then_stop(path, *args, **kw):  # interrupted once epoch 1's last.pt is written
        real_save(path, *args, **kw)
        if str(path).endswith("last.pt") and kw["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(base_training, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_model(_settings(tmp_path, "resumed"))
    monkeypatch.setattr(base_training, "save_checkpoint", real_save)
    train_model(_settings(tmp_path, "resumed", resume=str(tmp_path / "resumed" / "last.pt")))

    straight, first, second = seen
    expected = [1e-2 * expected_factor("cosine", s, 6, 2) for s in range(6)]  # T = 2 · 3, warm-up round(0.34 · 6) = 2
    assert straight == pytest.approx(expected, rel=1e-12)
    assert first[:3] + second == straight  # exactly the same LRs
    a, b = (load_checkpoint(tmp_path / n / "final.pt").state_dict for n in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader((tmp_path / "resumed" / "training_logs.csv").open()))
    assert [float(r["lr"]) for r in rows] == pytest.approx([straight[2], straight[5]])
    config = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert (
        config["settings"]["optim"]["schedule_unit"] == "step"
        and "optimizer step" in config["conventions"]["lr_schedule"]
    )


def test_a_checkpoint_from_before_the_per_step_options_resumes(tmp_path, monkeypatch):
    train_model(_settings(tmp_path, "old", epochs=1, optim=OptimConfig()))
    ckpt = torch.load(tmp_path / "old" / "last.pt", weights_only=False)
    for key in ("schedule_unit", "warmup_fraction"):  # as written before they existed
        del ckpt["training"]["optim"][key]
    torch.save(ckpt, tmp_path / "old" / "last.pt")
    train_model(_settings(tmp_path, "old", epochs=2, optim=OptimConfig(), resume=str(tmp_path / "old" / "last.pt")))
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    assert config["resume_mismatches"] == [] and config["conventions"]["lr_schedule"] == "stepped per epoch"


# -- task loss matching: per pair, grouped, and the grouped checkpoint ------------------------------------


def _weights(result):
    return torch.load(f"{result.run_dir}/{WEIGHTS_FILE}", weights_only=True)


def test_per_pair_and_grouped_tlm_follow_the_per_step_schedule(tmp_path, monkeypatch):
    seen: list[list[float]] = []
    spy_on(monkeypatch, grouped, seen)  # per-pair runs are grids of one: every optimizer is built there
    front, end = trained_resnet(0), trained_resnet(1)
    # 96 images in batches of 32, 2 epochs: T = 6 steps, warm-up round(0.3 · 6) = 2
    common = dict(
        QUICK,
        epochs=2,
        init="rand",
        batch_size=32,
        train_samples=96,
        test_samples=40,
        optim=OptimConfig(lr=1e-2, scheduler="onecycle", schedule_unit="step", warmup_fraction=0.3),
    )
    layers = (["layer1.0", "layer2.1"], ["layer3.0"])
    per_pair = stitch_grid(
        front, end, *layers, StitchSettings(**common, grouping="per-pair"), save_dir=tmp_path / "per"
    )
    together = stitch_grid(front, end, *layers, StitchSettings(**common), save_dir=tmp_path / "grp")
    expected = [1e-2 * expected_factor("onecycle", s, 6, 2) for s in range(6)]
    assert len(seen) == 3  # one optimizer per pair, then one for the grouped grid
    for lrs in seen:
        assert lrs == pytest.approx(expected, rel=1e-12)
    for a, b in zip(per_pair, together):
        assert a.run_name == b.run_name and [r["lr"] for r in b.train_history] == pytest.approx(
            [expected[2], expected[5]], rel=1e-12
        )
        for key, value in _weights(a).items():
            torch.testing.assert_close(_weights(b)[key], value, atol=2e-5, rtol=1e-4)
        assert b.options["optim"]["schedule_unit"] == "step" and "optimizer step" in b.conventions["lr_schedule"]


def test_grouped_tlm_resumed_from_its_checkpoint_follows_the_same_schedule(tmp_path, monkeypatch):
    seen: list[list[float]] = []
    spy_on(monkeypatch, grouped, seen)
    front, end = trained_resnet(0), trained_resnet(1)
    # 64 images in batches of 32, 3 epochs: T = 6 steps, warm-up round(0.34 · 6) = 2
    settings = StitchSettings(
        **QUICK,
        epochs=3,
        init="rand",
        batch_size=32,
        train_samples=64,
        test_samples=40,
        optim=OptimConfig(lr=1e-2, scheduler="cosine", schedule_unit="step", warmup_fraction=0.34),
    )
    layers = (["layer1.0", "layer2.1"], ["layer1.1"])
    straight = stitch_grid(front, end, *layers, settings, save_dir=tmp_path / "straight")
    interrupt_grouped_training(
        monkeypatch, 2, lambda: stitch_grid(front, end, *layers, settings, save_dir=tmp_path / "resumed")
    )
    resumed = stitch_grid(front, end, *layers, settings, save_dir=tmp_path / "resumed")
    full, interrupted, rest = seen
    assert full == pytest.approx([1e-2 * expected_factor("cosine", s, 6, 2) for s in range(6)], rel=1e-12)
    assert len(interrupted) == 4 and interrupted + rest == full  # the third epoch continued the schedule exactly
    for a, b in zip(straight, resumed):
        for key, value in _weights(a).items():
            torch.testing.assert_close(_weights(b)[key], value)
        assert [r["lr"] for r in a.train_history] == [r["lr"] for r in b.train_history]


# -- detectors and probes ------------------------------------------------------------------------------------


def test_detector_pretraining_and_finetuning_follow_the_per_step_schedule(tmp_path, monkeypatch):
    from stitchkit.ood import bank

    seen: list[list[float]] = []
    spy_on(monkeypatch, bank, seen)
    # pre-training: 64 images in batches of 16 = 4 steps per epoch; fine-tuning: 32 per side in halves of 8 = 4 steps
    config = DetectorTrainConfig(
        save_dir=str(tmp_path / "det"),
        model_type="repr_cls_resnet18",
        model_options={"width": 4},
        dataset="digits",
        epochs=2,
        ft_epochs=2,
        batch_size=16,
        ft_ood_dataset="natural_patches_gray",
        train_subset=64,
        ft_samples=32,
        val_subset=0,
        register=False,
        device="cpu",
        progress=False,
        verbose=False,
        scheduler="linear",
        schedule_unit="step",
        warmup_fraction=0.25,
    )
    source = get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4).eval()
    (result,) = train_detectors(source, ["layer1.0"], config)
    expected = [1e-3 * expected_factor("linear", s, 8, 2) for s in range(8)]
    assert seen[0] == pytest.approx(expected, rel=1e-12) and seen[1] == pytest.approx(expected, rel=1e-12)
    assert [row["lr"] for row in result.finetune_log] == pytest.approx([expected[3], expected[7]], rel=1e-12)
    assert "optimizer step" in result.meta["conventions"]["finetune_lr_schedule"]
    assert config.identity()["scheduler"] == "linear"  # a detector with another schedule gets another id


def test_probes_follow_the_per_step_schedule(monkeypatch):
    from stitchkit.probing import bank

    seen: list[list[float]] = []
    spy_on(monkeypatch, bank, seen)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, 2, 2, generator=g), torch.randint(0, 3, (40,), generator=g)
    config = ProbeConfig(
        epochs=3, batch_size=10, lr=0.05, scheduler="onecycle", schedule_unit="step", warmup_fraction=0.25
    )
    probe_activations({"c": x}, y, {"c": x}, y, config=config)
    assert seen[0] == pytest.approx([0.05 * expected_factor("onecycle", s, 12, 3) for s in range(12)], rel=1e-12)
    assert config.key().endswith("|scheduler=onecycle|schedule_unit=step|warmup_fraction=0.25")


# -- names and ids -----------------------------------------------------------------------------------------


def test_defaults_keep_the_names_and_ids_of_existing_results():
    def digest(obj):
        return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]

    # computed with the code before the per-step schedules
    assert digest(StitchSettings(epochs=2).result_options()) == "40b9d379c8eb3cf1"
    # (the augmentation joins a detector's id as it acts, ood.train_inputs.DetectorAugmentation.identity: un-augmented
    # ID half here)
    assert digest({**DetectorTrainConfig(save_dir="x").identity(), "ft_id_augment": False}) == "37413da42601a77c"
    # (the probes' augmentation enters their key as it acts: the dataset's, as every probe before the choice existed)
    assert ProbeConfig(augment="dataset").key() == "10|64|0.001|0.0|0|[5]|0.1|fixed|cls|True"


def test_stitch_run_names_change_exactly_when_the_schedule_changes_the_learning_rates():
    def options(**kw):
        return StitchSettings(epochs=2, optim=OptimConfig(**kw)).result_options()

    assert (
        options(schedule_unit="step") == options()
    )  # per step, but the per-epoch LRs: the same numbers, the same name
    assert options(milestones=[1], schedule_unit="step") == options(milestones=[1])
    names = [
        options(scheduler="cosine"),
        options(scheduler="cosine", schedule_unit="step"),
        options(scheduler="cosine", schedule_unit="step", warmup_fraction=0.1),
        options(schedule_unit="step", warmup_fraction=0.1),
    ]
    assert all(a != b for i, a in enumerate(names) for b in names[i + 1 :])
    assert (
        StitchSettings(epochs=0, optim=OptimConfig(scheduler="cosine", schedule_unit="step")).result_options()
        == StitchSettings(epochs=0).result_options()
    )  # nothing is trained


# -- the command line and the study keys -----------------------------------------------------------------------


def test_the_commands_take_the_schedule_options(tmp_path, capsys):
    from stitchkit.cli import build_parser
    from stitchkit.cli.stitch import settings_from_args

    args = build_parser().parse_args(
        [
            "stitch",
            "a.pt",
            "b.pt",
            "-",
            "-",
            "layer1.0",
            "layer1.0",
            "c2c",
            "-sched",
            "onecycle",
            "--schedule-unit",
            "step",
            "--warmup-fraction",
            "0.3",
        ]
    )
    optim = settings_from_args(args).optim
    assert (optim.scheduler, optim.schedule_unit, optim.warmup_fraction) == ("onecycle", "step", 0.3)
    for argv in (["detector", "train", "a.pt", "-", "-dir", "x"], ["probe", "a.pt"]):
        args = build_parser().parse_args(
            argv + ["-sched", "linear", "--schedule-unit", "step", "--warmup-fraction", "0.1"]
        )
        assert (args.scheduler, args.schedule_unit, args.warmup_fraction) == ("linear", "step", 0.1)
    assert (
        main(
            [
                "train",
                "resnet18",
                "-d",
                "digits",
                "--width",
                "4",
                "-e",
                "1",
                "-b",
                "32",
                "--train-subset",
                "64",
                "-gpu",
                "-1",
                "-workers",
                "0",
                "--no-progress",
                "-dir",
                str(tmp_path / "t"),
                "-sched",
                "cosine",
                "--schedule-unit",
                "step",
                "--warmup-fraction",
                "0.5",
            ]
        )
        == 0
    )
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["settings"]["optim"]["warmup_fraction"] == 0.5
    rows = list(csv.DictReader((tmp_path / "t" / "training_logs.csv").open()))
    assert float(rows[0]["lr"]) == pytest.approx(1e-3)  # the last of T = 2 steps, after a 1-step warm-up: the peak
    capsys.readouterr()
    for command in (["train"], ["stitch"], ["detector", "train"], ["probe"]):
        with pytest.raises(SystemExit):
            main(command + ["--help"])
        text = capsys.readouterr().out
        assert "--schedule-unit" in text and "--warmup-fraction" in text and "onecycle" in text, command


def _study(**sections):
    raw = {"networks": {"seeds": [0, 1]}}
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


@pytest.mark.parametrize("section", ["networks", "stitching", "ood", "probes"])
def test_study_schedule_keys_are_checked_together(section):
    config = validate(_study(**{section: {"scheduler": "onecycle", "schedule_unit": "step", "warmup_fraction": 0.3}}))
    assert (config[section]["scheduler"], config[section]["schedule_unit"]) == ("onecycle", "step")
    with pytest.raises(StitchkitError, match=rf"\[{section}\] scheduler = 'onecycle'.*schedule unit step"):
        validate(_study(**{section: {"scheduler": "onecycle"}}))
    with pytest.raises(StitchkitError, match=rf"{section}.warmup_fraction must be in \[0, 1\)"):
        validate(_study(**{section: {"schedule_unit": "step", "warmup_fraction": 1}}))
    with pytest.raises(StitchkitError, match=rf"{section}.schedule_unit has 'batch'"):
        validate(_study(**{section: {"schedule_unit": "batch"}}))
    with pytest.raises(StitchkitError, match="needs the schedule unit step"):
        validate(_study(**{section: {"warmup_fraction": 0.2}}))


class _Called(Exception):
    """Stops a unit kind at its library call, with what it was called with."""


def test_study_schedule_keys_reach_the_units_and_the_library(tmp_path, monkeypatch):
    from pathlib import Path

    from stitchkit.ood import train as ood_train
    from stitchkit.probing import model as probing_model
    from stitchkit.sensitivity import run as sensitivity_run
    from stitchkit.stitching import grid
    from stitchkit.study.config import load_config
    from stitchkit.study.plan import plan_study
    from stitchkit.study.unit_kinds import detectors, probes, sensitivity, shared, stitch, train
    from stitchkit.study.units import UnitContext
    from stitchkit.training import base as training_base

    config = load_config(Path(__file__).parent / "configs" / "tiny_study.toml")
    schedule = {"scheduler": "cosine", "schedule_unit": "step", "warmup_fraction": 0.1}
    for section in ("networks", "stitching", "ood", "probes"):
        config[section].update(schedule)
    units = {(u.kind, u.params.get("method")): u for u in plan_study(config, tmp_path)}
    for key in [("train", None), ("stitch", "tlm"), ("detectors", None), ("probes", None)]:
        assert {k: units[key].params[k] for k in schedule} == schedule, key
    assert not set(schedule) & set(units[("stitch", "dm")].params)  # DM trains nothing
    assert {
        k: units[("sensitivity", None)].params[f"probe_{k}"] for k in schedule
    } == schedule  # the tests' probes are the probes'

    def called(*args, **kw):
        raise _Called(args, kw)

    # the kinds import the library when they run: stop it where it is defined
    stops = (
        (training_base, "train_model"),
        (grid, "stitch_grid"),
        (ood_train, "train_detectors_for_checkpoint"),
        (probing_model, "probe_model"),
        (sensitivity_run, "run_grounding_test"),
    )
    for module, name in stops:
        monkeypatch.setattr(module, name, called)
    for module in (shared, probes):
        monkeypatch.setattr(module, "load_network", lambda *args, **kw: None)
    fake = {"artifacts": {"checkpoint": "x.pt"}, "model_hashes": {}, "label": "train a", "kind": "train"}
    cases = [  # the unit, its kind's function, and where the library call got the schedule
        (("train", None), train.run_train, lambda args, kw: args[0].optim),
        (("stitch", "tlm"), stitch.run_stitch, lambda args, kw: args[4].optim),
        (("detectors", None), detectors.run_detectors, lambda args, kw: args[3].optim("finetune")),
        (("probes", None), probes.run_probes, lambda args, kw: kw["config"].optim()),
        (("sensitivity", None), sensitivity.run_sensitivity, lambda args, kw: kw["settings"].probe.optim()),
    ]
    for key, run, schedule_of in cases:
        unit = units[key]
        ctx = UnitContext(tmp_path, tmp_path / key[0], {d: fake for d in unit.deps}, {"device": "cpu"})
        with pytest.raises(_Called) as info:
            run(unit, ctx)
        optim = schedule_of(*info.value.args)
        assert (optim.scheduler, optim.schedule_unit, optim.warmup_fraction) == ("cosine", "step", 0.1), key
