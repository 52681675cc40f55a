"""The command line: help with examples everywhere, one-line errors with exit code 2, no half-written files."""

import json
import subprocess
import sys

import pytest
import torch

from stitchkit.cli import build_parser, main
from stitchkit.cli.common import ORIGINAL_OUTPUT
from stitchkit.errors import StitchkitError, StitchkitWarning
from stitchkit.probing.probe import ProbeConfig
from stitchkit.stitching.settings import StitchSettings

COMMANDS = ["train", "eval", "layers", "models", "datasets"]


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"stitchkit {command}" in out


def test_the_original_spellings_are_accepted():
    args = build_parser().parse_args(
        "train resnet18 -gpu -1 -d fashion -o sgd -b 32 -e 2 -lr 0.1 -wd 0 -s 3 -rlre 1 -data /tmp/d --grad-clip 5 "
        "-workers 0 -prefetch 2 -dir out -sf 2".split()
    )
    assert (args.device, args.dataset, args.optimizer, args.batch_size, args.epochs, args.lr) == (
        "-1",
        "fashion",
        "sgd",
        32,
        2,
        0.1,
    )
    assert (args.weight_decay, args.seed, args.milestones, args.data_root, args.grad_clip) == (
        0.0,
        3,
        [1],
        "/tmp/d",
        5.0,
    )
    assert (args.workers, args.prefetch, args.save_dir, args.save_frequency) == (0, 2, "out", 2)
    assert build_parser().parse_args(["train", "resnet18", "--device", "cpu", "-dir", "x"]).device == "cpu"


TINY = ["--width", "4", "-d", "digits", "-gpu", "-1", "-workers", "0", "--no-progress"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "resnet99", "-dir", "{tmp}/a"] + TINY, "unknown model 'resnet99'"),
        (["train", "resnet18", "-dir", "{tmp}/a", "-d", "cifar11", "-gpu", "-1"], "unknown dataset 'cifar11'"),
        (["train", "resnet18", "-dir", "{tmp}/a", "-sf", "0"] + TINY, "save frequency"),
        (["train", "resnet18", "-dir", "{tmp}/a", "-lr", "-1"] + TINY, "learning rate"),
        (["train", "resnet18", "-dir", "{tmp}/afile/sub"] + TINY, "cannot create output folder"),
        (["train", "resnet18", "-dir", "{tmp}/a", "--model-option", "depth"] + TINY, "KEY=VALUE"),
        (["train", "resnet18", "-dir", "{tmp}/a", "-gpu", "cuda:0", "-d", "digits"], "CUDA is not available"),
        (["eval", "{tmp}/missing.pt"], "does not exist"),
        (["eval", "{tmp}/afile"], "corrupt or not a PyTorch file"),
        (["layers", "resnet18", "-d", "nope"], "unknown dataset"),
        (["layers", "no_such_model"], "unknown model"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path, capsys):
    (tmp_path / "afile").write_text("not a checkpoint")
    code, out, err = run([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    assert code == 2
    assert err.startswith("stitchkit: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "a" / "final.pt").exists()


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(Exception, match="unknown model"):
        main(["layers", "no_such_model", "--debug"])


def test_the_console_script_exits_with_code_2():
    proc = subprocess.run(
        [sys.executable, "-m", "stitchkit", "layers", "no_such_model"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "unknown model" in proc.stderr and "Traceback" not in proc.stderr


def test_layers_prints_names_and_shapes(capsys):
    code, out, _ = run(["layers", "resnet18", "-d", "fashion", "--width", "4"], capsys)
    assert code == 0
    assert "8 stitchable layers" in out and "layer1.0" in out and "4 x 28 x 28" in out and "32 x 4 x 4" in out
    code, out, _ = run(["layers", "vit_tiny_patch4_32", "-d", "cifar10", "--model-option", "depth=2", "--json"], capsys)
    data = json.loads(out)
    assert [layer["name"] for layer in data["layers"]] == ["blocks.0", "blocks.1"] and data["layers"][0]["shape"] == [
        65,
        192,
    ]


def test_train_then_eval_from_the_command_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, _ = run(
        ["train", "resnet18", "-e", "1", "-b", "64", "--train-subset", "128", "-dir", str(run_dir)] + TINY, capsys
    )
    assert (
        code == 0
        and out.splitlines()[-2].startswith("trained resnet18 on digits for 1 epoch(s) in ")
        and "s: test accuracy " in out
    )
    assert out.splitlines()[-1] == f"wrote {run_dir / 'final.pt'}"
    config = json.loads((run_dir / "config.txt").read_text())
    assert config["model_type"] == "resnet18" and config["save_frequency"] == 1  # the original's config.txt keys
    code, out, _ = run(
        [
            "eval",
            str(run_dir / "final.pt"),
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
            "--json",
            str(tmp_path / "e.json"),
        ],
        capsys,
    )
    numbers = json.loads((tmp_path / "e.json").read_text())
    assert code == 0 and out.splitlines() == [
        f"resnet18 ({run_dir / 'final.pt'}) on digits test (359 images): accuracy {100 * numbers['acc']:.2f}%, "
        f"top-5 {100 * numbers['top5']:.2f}%",
        f"wrote {tmp_path / 'e.json'}",
    ]
    assert json.loads((tmp_path / "e.json").read_text())["dataset"] == "digits"
    code, out, _ = run(["layers", str(run_dir / "final.pt")], capsys)
    assert code == 0 and "on digits" in out
    # a plain state_dict of the original, with the model named
    torch.save(torch.load(run_dir / "model_1.pt", weights_only=True), tmp_path / "model_5.pt")
    code, out, _ = run(
        [
            "eval",
            str(tmp_path / "model_5.pt"),
            "resnet18",
            "-d",
            "digits",
            "--width",
            "4",
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
            "--original-output",
        ],
        capsys,
    )
    assert (
        code == 0 and out.startswith("Clean accuracy: ") and "\nEvaluated on: digits (test split, 359 images)\n" in out
    )


def test_catalog_commands(capsys):
    code, out, _ = run(["models"], capsys)
    assert code == 0 and "resnet18" in out and "vit_tiny_patch4_32" in out and "torchvision:" in out
    code, out, _ = run(["datasets"], capsys)
    assert code == 0 and "fashion" in out and "cifar5m" in out and "natural_patches" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "resnet18", "-dir", "x"],
        ["eval", "a.pt"],
        ["stitch", "a.pt", "b.pt", "-", "-", "l", "l", "c2c"],
        ["ood", "runs"],
        ["similarity", "a.pt", "b.pt", "-", "-", "all", "all"],
        ["probe", "a.pt"],
    ],
)
def test_the_commands_with_the_originals_printout_take_one_flag_for_it(argv):
    parser = build_parser()
    assert (
        parser.parse_args(argv).original_output is False
        and parser.parse_args(argv + [ORIGINAL_OUTPUT]).original_output is True
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["stitch", "a.pt", "b.pt", "-", "-", "l", "l", "c2c"],
        ["probe", "a.pt"],
        ["similarity", "a.pt", "b.pt", "-", "-", "all", "all"],
        ["sensitivity", "a.pt", "b.pt", "-l", "layer1.0", "-ranks", "2"],
    ],
)
def test_the_low_rank_mode_has_one_spelling_in_every_command(argv, capsys):
    parser = build_parser()
    assert parser.parse_args(argv).low_rank_mode == "fixed"
    assert parser.parse_args(argv + ["--low-rank-mode", "per_batch"]).low_rank_mode == "per_batch"
    with pytest.warns(StitchkitWarning, match="'per-batch' is deprecated: every command now spells it 'per_batch'"):
        assert (
            parser.parse_args(argv + ["--low-rank-mode", "per-batch"]).low_rank_mode == "per_batch"
        )  # what the stitch command took
    with pytest.raises(SystemExit) as info:
        main(argv + ["--low-rank-mode", "batch"])
    err = capsys.readouterr().err
    assert (
        info.value.code == 2
        and "unknown low-rank mode 'batch'; known low-rank modes: fixed, per_batch" in err
        and err.count("\n") == 1
    )


def test_the_library_reads_the_old_low_rank_spelling_with_a_warning():
    with pytest.warns(StitchkitWarning, match="deprecated"):
        assert StitchSettings(low_rank_mode="per-batch", front_stitch_rank=2).validate().low_rank_mode == "per_batch"
    with pytest.warns(StitchkitWarning, match="deprecated"):
        assert ProbeConfig(low_rank_mode="per-batch").validate().low_rank_mode == "per_batch"
    with pytest.raises(StitchkitError, match="known low-rank modes: fixed, per_batch"):
        StitchSettings(low_rank_mode="perbatch").validate()
