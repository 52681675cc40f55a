"""``stitchkit stitch`` and ``stitchkit collect``: the original's command form and files, deterministic run
folders that are never overwritten silently, grid resumption, NaN for missing pairs, one-line errors."""

import json
import math
import os
from pathlib import Path

import pytest
import torch
from stitch_support import QUICK, trained_resnet, write_tiny_cifar10

from stitchkit.cli import main
from stitchkit.models import get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.stitching import StitchSettings, load_stitcher, stitch_grid
from stitchkit.stitching.grid import GridOptions

FAST = ["-gpu", "-1", "-workers", "0", "--no-progress"]


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two self-describing width-4 ResNet-18 checkpoints trained on digits."""
    root = tmp_path_factory.mktemp("ckpt")
    paths = []
    for seed in (0, 1):
        path = root / f"r18_s{seed}.pt"
        save_checkpoint(path, trained_resnet(seed), dataset="digits", input_shape=(1, 28, 28))
        paths.append(path)
    return paths


def test_the_originals_readme_command_runs_unchanged(tmp_path, monkeypatch, capsys):
    """`python exec_stitch.py models/test/model_5.pt ...` with plain state_dicts of the original and CIFAR-10 files."""
    monkeypatch.chdir(tmp_path)
    write_tiny_cifar10(tmp_path / "data")
    monkeypatch.setenv("STITCHKIT_DATA", str(tmp_path / "data"))
    for folder, seed in (("test", 0), ("test2", 1)):
        torch.manual_seed(seed)
        model = get_model("resnet18", num_classes=10, in_channels=3, input_size=32)
        (tmp_path / "models" / folder).mkdir(parents=True)
        torch.save(model.state_dict(), tmp_path / "models" / folder / "model_5.pt")
    command = (
        "stitch models/test/model_5.pt models/test2/model_5.pt resnet18 resnet18 layer4.1 layer1.0 rc2c_pre "
        "-d cifar10 -e 0 -b 512 -i pinv --mod-only-stitch"
    )
    code, out, err = run(command.split(), capsys)
    assert code == 0, err
    (run_dir,) = list((tmp_path / "results").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    summary, wrote = out.strip().splitlines()[-2:]
    assert (
        summary.startswith("stitched layer4.1 -> layer1.0 (rc2c_pre, pinv, 0 epoch(s)): accuracy ")
        and wrote == f"wrote {Path('results') / run_dir.name}"
    )
    relative = result["accuracy"] / result["end_accuracy"]
    assert summary.endswith(f"end network {100 * result['end_accuracy']:.2f}%, relative accuracy {relative:.3f}")
    assert run_dir.name.startswith("layer4.1__layer1.0__rc2c_pre__pinv_e0__")
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.json",
        "config.txt",
        "final_model.pt",
        "per_sample.npz",
        "result.json",
        "summary.txt",
    ]
    lines = (run_dir / "summary.txt").read_text().split("\n")
    assert lines[:4] == [
        "Front model: models/test/model_5.pt ",
        "End model: models/test2/model_5.pt ",
        "Front layer: layer4.1 ",
        "End layer: layer1.0 ",
    ]
    assert lines[4].startswith("Clean accuracy: 0.") and lines[4].endswith(" ") and len(lines[4].split()[2]) == 6
    assert lines[5].startswith("Normalized PINV difference: ") and lines[6].startswith(
        "Normalized representation difference: "
    )
    assert lines[7] == "" and lines[9:11] == ["", "Sparsity"]
    # in-process the command is rebuilt from the parsed arguments (from a shell it is sys.argv, like the original)
    assert (
        lines[8].startswith("Command: stitchkit " + command[:100])
        and "-e 0" in lines[8]
        and "--mod-only-stitch" in lines[8]
    )
    assert lines[11].startswith("0: \t\t") and lines[12].startswith("1e-5: \t") and lines[16].startswith("1e-1: \t")
    config = json.loads((run_dir / "config.txt").read_text())
    # K = 100 asked of the tiny 20-image training split: all 20 are used, said once, and recorded as used
    assert (
        config["n_epochs"] == 0
        and config["init"] == "pinv"
        and config["n_pinv_init_samples"] == 20
        and config["mod_only_stitch"]
    )
    assert err.count("fewer than the 100 asked for; using all 20") == 1
    assert (
        config["front_layer"] == "layer4.1" and config["stitching_type"] == "rc2c_pre" and config["batch_size"] == 512
    )
    state = torch.load(run_dir / "final_model.pt", weights_only=True)
    assert sorted(state) == ["transform.bias", "transform.weight"] and state["transform.weight"].shape == (
        64,
        512,
        1,
        1,
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["n_fit"] == 20 and result["n_test"] == 8  # K = 100 > the 20 training images: all of them
    assert result["front"]["model_type"] == "resnet18" and len(result["front"]["fingerprint"]) == 16
    assert result["conventions"]["residual"].startswith("‖T(f(x)) − g(x)‖²_F / ‖g(x)‖²_F")
    assert {"fit", "eval", "total"} <= set(result["seconds"])
    assert set(result["sparsity"]) == {"weight", "bias", "all"}
    # run again: the finished run is kept and said so
    code, out, _ = run(command.split() + ["--original-output"], capsys)
    assert code == 0 and "skipping" in out and "stored result" in out
    assert (
        out.strip().splitlines()[-1]
        == f"Clean accuracy: {100 * result['accuracy']:.2f}% (stored result; pass --overwrite to recompute)"
    )
    assert len(list((tmp_path / "results").iterdir())) == 1


def test_training_writes_logs_and_the_run_can_be_reloaded(checkpoints, tmp_path, capsys):
    a, b = checkpoints
    args = [
        a,
        b,
        "-",
        "auto",
        "layer3.0",
        "layer2.1",
        "auto",
        "-e",
        "1",
        "--train-subset",
        "96",
        "--test-samples",
        "64",
        "-l1",
        "1e-4",
        "--grad-clip",
        "1",
        "-sched",
        "cosine",
        "--results-root",
        tmp_path,
        "-dir",
        "tlm",
    ] + FAST
    code, out, err = run(["stitch", *args], capsys)
    assert code == 0, err
    (run_dir,) = list((tmp_path / "tlm").iterdir())
    assert run_dir.name.startswith("layer3.0__layer2.1__auto__rand_e1__")
    header = (run_dir / "training_logs.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["train_acc", "train_loss", "val_acc", "val_loss"]
    result = json.loads((run_dir / "result.json").read_text())
    assert (
        result["stitching_type"] == "rc2c_pre" and result["dataset"] == "digits" and result["dm_fit_residual"] is None
    )
    stitcher = load_stitcher(run_dir)
    assert stitcher.kind == "rc2c_pre"
    torch.testing.assert_close(
        stitcher.layer.transform.weight, torch.load(run_dir / "final_model.pt")["transform.weight"]
    )


def test_an_interrupted_grid_resumes_with_the_missing_pairs(checkpoints, tmp_path, capsys):
    a, b = checkpoints
    settings = StitchSettings(
        **{**QUICK, "stitching_type": "rc2c_pre", "init": "pinv", "epochs": 0, "test_samples": 60}
    )
    done = []

    def interrupt(result):
        done.append(result)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stitch_grid(
            a,
            b,
            "layer1.0,layer4.1",
            "layer2.0,layer3.0",
            settings,
            GridOptions(on_result=interrupt),
            save_dir=tmp_path,
        )
    finished = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert len(finished) == 2
    stamps = {name: os.stat(tmp_path / name / "result.json").st_mtime_ns for name in finished}
    code, out, err = run(
        [
            "stitch",
            a,
            b,
            "-",
            "-",
            "-",
            "-",
            "rc2c_pre",
            "--front-layers",
            "layer1.0,layer4.1",
            "--end-layers",
            "layer2.0,layer3.0",
            "-e",
            "0",
            "-i",
            "pinv",
            "--test-samples",
            "60",
            "--results-root",
            tmp_path,
        ]
        + FAST,
        capsys,
    )
    assert code == 0, err
    assert out.count("skipping") == 2 and "2 pair(s) stitched, 2 already finished" in out
    runs = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert len(runs) == 4 and all((tmp_path / r / "result.json").is_file() for r in runs)
    assert all(os.stat(tmp_path / name / "result.json").st_mtime_ns == stamp for name, stamp in stamps.items())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folders or cache left


def test_collect_builds_matrices_in_layer_order_with_nan_for_missing_pairs(checkpoints, tmp_path, capsys):
    a, b = checkpoints
    results = tmp_path / "results" / "dm"
    code, _, err = run(
        [
            "stitch",
            a,
            b,
            "-",
            "-",
            "layer4.1,layer1.0",
            "layer2.1,layer1.1",
            "rc2c_pre",
            "-e",
            "0",
            "-i",
            "pinv",
            "--test-samples",
            "60",
            "--results-root",
            tmp_path / "results",
            "-dir",
            "dm",
        ]
        + FAST,
        capsys,
    )
    assert code == 0, err
    missing = next(p for p in results.iterdir() if p.name.startswith("layer4.1__layer1.1__"))
    stored = {p.name: json.loads((p / "result.json").read_text()) for p in results.iterdir()}
    for path in missing.iterdir():
        path.unlink()
    missing.rmdir()
    code, out, err = run(["collect", results, "-o", tmp_path / "out", "--print", "accuracy", "residual"], capsys)
    assert code == 0, err
    matrices = json.loads((tmp_path / "out" / "matrices.json").read_text())["groups"]
    assert len(matrices) == 1
    group = matrices[0]
    assert group["front_layers"] == ["layer1.0", "layer4.1"] and group["end_layers"] == ["layer1.1", "layer2.1"]
    acc = group["metrics"]["accuracy"]
    assert acc[1][0] is None and all(v is not None for v in (acc[0][0], acc[0][1], acc[1][1]))
    by_pair = {(r["front_layer"], r["end_layer"]): r for r in stored.values()}
    assert acc[0][1] == by_pair[("layer1.0", "layer2.1")]["accuracy"]
    assert group["metrics"]["residual"][0][0] == by_pair[("layer1.0", "layer1.1")]["residual"]
    rows = (tmp_path / "out" / "accuracy.csv").read_text().splitlines()
    assert rows[0] == "front\\end,layer1.1,layer2.1" and rows[2].split(",")[1] == "nan"
    assert math.isclose(float(rows[1].split(",")[2]), acc[0][1])
    assert "nan" in out and "1 missing pair(s)" in out
    code, out, _ = run(["collect", results, "--all-layers", "--json"], capsys)
    assert len(json.loads(out)["groups"][0]["front_layers"]) == 8


@pytest.mark.parametrize(
    "args,message",
    [
        (["{a}", "{b}", "-", "-", "layer9.9", "layer1.0", "rc2c_pre"], "valid layers: layer1.0, layer1.1"),
        (
            ["{a}", "{b}", "-", "-", "layer1.0", "layer2.0", "c2c"],
            "cannot map source shape (4, 28, 28) to target shape (8, 14, 14)",
        ),
        (
            ["{a}", "{b}", "vit_tiny_patch4_32", "-", "layer1.0", "layer1.0", "auto"],
            "holds a resnet18, not a vit_tiny_patch4_32",
        ),
        (["{tmp}/missing.pt", "{b}", "-", "-", "layer1.0", "layer1.0", "auto"], "does not exist"),
        (["{a}", "{b}", "-", "-", "layer1.0", "layer1.0", "auto", "--front-pinv-rank", "2"], "add -i pinv"),
        (["{a}", "{b}", "-", "-", "layer1.0", "layer1.0", "auto", "-e", "-1"], "epochs"),
        (["{a}", "{b}", "-", "-", "-", "layer1.0", "auto"], "--front-layers"),
        (["{a}", "{b}", "-", "-", "layer1.0", "layer1.0", "auto", "-d", "cifar10"], "3 channels"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(checkpoints, args, message, tmp_path, capsys):
    a, b = checkpoints
    args = [x.replace("{a}", str(a)).replace("{b}", str(b)).replace("{tmp}", str(tmp_path)) for x in args]
    code, out, err = run(["stitch", *args, "--results-root", tmp_path / "r"] + FAST, capsys)
    assert code == 2
    assert err.startswith("stitchkit: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_collect_of_an_empty_folder_is_an_error(tmp_path, capsys):
    code, _, err = run(["collect", tmp_path], capsys)
    assert code == 2 and "no finished stitch runs" in err


@pytest.mark.parametrize("command", ["stitch", "collect"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"stitchkit {command}" in out
    if command == "stitch":
        for flag in [
            "-gpu",
            "-d",
            "-o",
            "-b",
            "-e",
            "-lr",
            "-wd",
            "-s",
            "-rlre",
            "-data",
            "-workers",
            "-prefetch",
            "-dir",
            "--no-save",
            "--mod-only-stitch",
            "-i",
            "-pinv-samples",
            "-l1",
            "-c2t-cls",
            "-t2c-cls",
            "-upsample",
            "--front-stitch-rank",
            "--front-pinv-rank",
            "-sched",
            "--grad-clip",
            "--low-rank-mode",
            "--front-layers",
            "--end-layers",
            "--overwrite",
        ]:
            assert f" {flag}" in out, flag


def test_no_save_and_two_experiments_in_one_folder(checkpoints, tmp_path, capsys):
    a, b = checkpoints
    base = [
        a,
        b,
        "-",
        "-",
        "layer2.0",
        "layer2.0",
        "rc2c_pre",
        "-e",
        "0",
        "--test-samples",
        "40",
        "--results-root",
        tmp_path,
    ] + FAST
    assert run(["stitch", *base, "-i", "pinv", "--no-save"], capsys)[0] == 0
    assert run(["stitch", *base, "-i", "eye"], capsys)[0] == 2  # an untrained layer is no result
    trained = [("1" if b == "0" else b) for b in base]  # -e 1
    assert run(["stitch", *trained, "--train-subset", "16", "-i", "eye"], capsys)[0] == 0
    runs = sorted(tmp_path.iterdir())
    assert [sorted(p.name for p in r.iterdir()) for r in runs] == [
        [
            "config.json",
            "config.txt",
            "final_model.pt",
            "per_sample.npz",
            "result.json",
            "summary.txt",
            "training_logs.csv",
        ],  # eye, trained
        ["config.json", "config.txt", "per_sample.npz", "result.json", "summary.txt"],  # pinv with --no-save
    ]
    code, out, _ = run(["collect", tmp_path, "-o", tmp_path / "tables"], capsys)
    assert code == 0 and out.count("== ") == 2 and "init=eye" in out and "init=pinv" in out
    groups = json.loads((tmp_path / "tables" / "matrices.json").read_text())["groups"]
    assert len(groups) == 2 and len({g["config_key"] for g in groups}) == 2
    assert sum(1 for p in (tmp_path / "tables").iterdir() if p.is_dir()) == 2  # one folder of CSVs per experiment
