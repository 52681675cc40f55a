"""Fault injection: damaged stores and files, refused inputs that must leave nothing behind, a study
driver killed with ``kill -9`` at random moments (every unit ends with exactly one result), pool
workers that must die with their driver, and concurrent writers.

Studies here run the real runner on ``fault_step`` units (tests/fault_driver.py): they sleep a little
and add up their dependencies' values, so a run takes seconds and its results can be checked."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fault_driver
import pytest
import torch

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.checkpoint import load_checkpoint, save_checkpoint
from stitchkit.study import Store, run_study, study_status
from stitchkit.study import runner as runner_module
from stitchkit.study.integrity import store_problem
from stitchkit.utils.io import check_writable_dir, torch_save_atomic, write_json_atomic, write_text_atomic

HERE = Path(__file__).parent
DRIVER = HERE / "fault_driver.py"
DISABLED = "\n".join(
    f"[{s}]\nenabled = false" for s in ("stitching", "similarity", "ood", "probes", "sensitivity", "specificity")
)
TINY = ["-gpu", "-1", "-workers", "0", "--no-progress"]


# -- helpers ----------------------------------------------------------------------------------------


def study_config(tmp_path: Path) -> Path:
    path = tmp_path / "faults.toml"
    path.write_text(
        textwrap.dedent("""
        [study]
        name = "faults"
        dataset = "digits"
        device = "cpu"

        [networks]
        seeds = [0, 1]
    """)
        + DISABLED
        + "\n"
    )
    return path


def plan(n: int = 10, seed: int = 0, seconds: tuple[float, float] = (0.02, 0.15)) -> list[dict]:
    """A DAG of ``n`` steps: each depends on up to two earlier ones."""
    rng = random.Random(seed)
    steps = []
    for i in range(n):
        deps = sorted(rng.sample([s["name"] for s in steps], k=min(len(steps), rng.randint(0, 2))))
        steps.append({"name": f"u{i}", "seconds": round(rng.uniform(*seconds), 3), "value": i + 1, "deps": deps})
    return steps


def expected_values(steps: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in steps:
        out[s["name"]] = s["value"] + sum(out[d] for d in s["deps"])
    return out


def env_with_log(log: Path) -> dict[str, str]:
    src = str(HERE.parent / "src")
    path = os.pathsep.join([src, str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    return {**os.environ, "PYTHONPATH": path, "STITCHKIT_FAULT_LOG": str(log), "OMP_NUM_THREADS": "1"}


def start_driver(
    tmp_path: Path, steps: list[dict], out: Path, executor: str = "inline", workers: int = 1
) -> subprocess.Popen:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(steps))
    cmd = [sys.executable, str(DRIVER), str(study_config(tmp_path)), str(out), executor, str(workers), str(plan_file)]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env_with_log(tmp_path / "events.log")
    )


def events(tmp_path: Path, after: float = 0.0) -> list[tuple[str, str, int]]:
    """(event, unit, pid) logged by the units (after a time, when given)."""
    path = tmp_path / "events.log"
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(e, n, int(p)) for e, n, p, t in rows if float(t) > after]


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def patch_plan(monkeypatch, steps):
    """Plan the fault study in this process too (the fault kind is registered by importing fault_driver)."""
    units = fault_driver.build_units(steps)
    monkeypatch.setattr(runner_module, "plan_study", lambda config, study_dir: units)


def in_process_study(tmp_path, monkeypatch, steps, out):
    patch_plan(monkeypatch, steps)
    monkeypatch.setenv("STITCHKIT_FAULT_LOG", str(tmp_path / "events.log"))
    return run_study(study_config(tmp_path), out, progress=False)


def store_rows(out: Path) -> dict:
    with Store(out / "study.sqlite", readonly=True) as store:
        return {r.label: r for r in store.all()}


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    assert err.startswith("stitchkit: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def tiny_checkpoint(path: Path, seed: int = 0, dataset: str = "digits") -> Path:
    torch.manual_seed(seed)
    model = get_model("resnet18", num_classes=10, in_channels=1, input_size=(28, 28), width=4)
    return save_checkpoint(path, model, dataset=dataset, input_shape=(1, 28, 28))


# -- 1. a damaged study store -------------------------------------------------------------------------


def _truncate(path: Path, rng: random.Random) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _break_header(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    data[:16] = b"not an sqlite db"
    path.write_bytes(bytes(data))


def _random_pages(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    for index in range(1, len(data) // page):  # every page but the header page
        start = index * page + 8
        data[start : start + page - 16] = bytes(rng.randrange(256) for _ in range(page - 16))
    path.write_bytes(bytes(data))


def _empty(path: Path, rng: random.Random) -> None:
    path.write_bytes(b"")


def _foreign(path: Path, rng: random.Random) -> None:
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE photos (name TEXT)")


def _garbage_row(path: Path, rng: random.Random) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE units SET metrics = '{broken' WHERE rowid = 1")


@pytest.mark.parametrize(
    "damage", [_truncate, _break_header, _random_pages, _empty, _foreign, _garbage_row], ids=lambda f: f.__name__[1:]
)
def test_a_damaged_store_is_reported_and_rebuilt_from_the_units_results(tmp_path, monkeypatch, capsys, damage):
    steps = plan(12, seconds=(0.0, 0.0))
    out = tmp_path / "study"
    in_process_study(tmp_path, monkeypatch, steps, out)
    (tmp_path / "events.log").unlink()
    config_before = (out / "config.json").read_bytes()
    damage(out / "study.sqlite", random.Random(0))
    assert store_problem(out / "study.sqlite") is not None

    # --status: one clear line, nothing rewritten
    code, _, err = cli(["study", study_config(tmp_path), "--out", out, "--status"], capsys)
    assert_one_line_error(code, err, "is damaged", "rebuild")
    assert (out / "config.json").read_bytes() == config_before and not list(out.glob("*.damaged-*"))

    # resume: kept aside, rebuilt from unit_result.json, said so, and nothing computed again
    summary = in_process_study(tmp_path, monkeypatch, steps, out)
    err = capsys.readouterr().err
    assert "is damaged" in err and "rebuilt from the unit_result.json files of 12 finished unit(s)" in err
    assert summary.counts["done"] == 12 and summary.ran == 0 and not events(tmp_path)
    assert len(list(out.glob("study.sqlite.damaged-*"))) == 1 and store_problem(out / "study.sqlite") is None
    rows = store_rows(out)
    assert {label: r.metrics["value"] for label, r in rows.items()} == expected_values(steps)
    assert all(r.status == "done" for r in rows.values())


# -- 2. a checkpoint that would run code -------------------------------------------------------------


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class AnyObject:
    pass


@pytest.mark.parametrize(
    "payload,name",
    [
        ("system", ("os.system", "posix.system")),
        ("print", ("print", "builtins.print")),
        ("object", ("test_faults.AnyObject",)),
    ],
)
def test_a_pickle_that_would_run_code_is_refused_by_name(tmp_path, payload, name):
    marker = tmp_path / "owned"
    obj = {"system": RunsCode(marker), "print": _PrintPayload(), "object": AnyObject()}[payload]
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": obj}, path)
    with pytest.raises(StitchkitError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"refusing to load {str(path)!r}") and "corrupt" not in message
    assert any(f"the Python object {n}," in message for n in name), message
    assert not marker.exists()


class _PrintPayload:
    def __reduce__(self):
        return (print, ("owned",))


def test_garbage_is_still_called_corrupt(tmp_path):
    path = tmp_path / "g.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(StitchkitError, match="corrupt or not a PyTorch file"):
        load_checkpoint(path)


# -- 3, 4, 13. detector training checks every output and input first -----------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ck") / "final.pt")


DET = ["layer4.1", "-e", "0", "-fe", "0", "-b", "8", "-ftoodd", "natural_patches_gray", *TINY]


def test_detector_train_checks_the_registry_path_before_training(checkpoint, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    for fdir, needle in (
        (tmp_path / "afile", "exists and is not a folder"),
        (tmp_path / "afile" / "reg", "is a file, not a folder"),
    ):
        code, _, err = cli(
            [
                "detector",
                "train",
                checkpoint,
                "-",
                *DET[:1],
                "-e",
                "1",
                "-fe",
                "1",
                *DET[5:],
                "-dir",
                tmp_path / "d",
                "-fdir",
                fdir,
            ],
            capsys,
        )
        assert_one_line_error(code, err, "detector registry folder (-fdir)", needle)
        assert not (tmp_path / "d").exists()
    broken = tmp_path / "broken_registry"
    broken.mkdir()
    (broken / "meta.json").write_text("{not json")
    code, _, err = cli(["detector", "train", checkpoint, "-", *DET, "-dir", tmp_path / "d", "-fdir", broken], capsys)
    assert_one_line_error(code, err, "not valid JSON")
    assert not (tmp_path / "d").exists()


def test_detector_train_refuses_a_finished_dir_unless_overwrite(checkpoint, tmp_path, capsys):
    args = ["detector", "train", checkpoint, "-", *DET, "-dir", tmp_path / "d", "-fdir", tmp_path / "reg"]
    code, out, err = cli(args, capsys)
    assert code == 0, err
    before = (tmp_path / "d" / "detector.json").read_bytes()
    code, _, err = cli(args, capsys)
    assert_one_line_error(code, err, "already holds a trained detector", "--overwrite")
    assert (tmp_path / "d" / "detector.json").read_bytes() == before
    code, _, err = cli(args + ["--overwrite"], capsys)
    assert code == 0, err


def test_detector_train_loads_every_dataset_before_pre_training(checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = cli(
        [
            "detector",
            "train",
            checkpoint,
            "-",
            "layer4.1",
            "-e",
            "1",
            "-fe",
            "1",
            "-b",
            "8",
            "-ftoodd",
            "outlier_exposure",
            "-ftooddata",
            tmp_path / "empty",
            *TINY,
            "-dir",
            tmp_path / "d",
            "-fdir",
            tmp_path / "reg",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "300K_random_images")
    assert not (tmp_path / "d").exists() and not (tmp_path / "reg").exists()
    code, _, err = cli(
        [
            "detector",
            "train",
            checkpoint,
            "-",
            "layer4.1",
            "-e",
            "1",
            "-fe",
            "0",
            "-b",
            "8",
            "--train-subset",
            "100000000",
            *TINY,
            "-dir",
            tmp_path / "d",
            "-fdir",
            tmp_path / "reg",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "--train-subset", "fewer than the 100000000 asked for")
    assert not (tmp_path / "d").exists()


# -- 5, 9. train: resume from another run, subsets larger than the split --------------------------------

TRAIN = ["resnet18", "-d", "digits", "--width", "4", "-b", "32", "--train-subset", "96", *TINY]


def test_resume_from_another_runs_checkpoint_is_refused_unless_forced(tmp_path, capsys):
    code, _, err = cli(["train", *TRAIN, "-e", "1", "-s", "0", "-dir", tmp_path / "a"], capsys)
    assert code == 0, err
    other = tmp_path / "a" / "last.pt"
    for extra, needle in (
        (["-s", "1"], "seed 0 (this run: 1)"),
        (["-s", "0", "-lr", "0.01"], "optim.lr"),
        (["-s", "0", "--no-augment"], "augment True (this run: False)"),
    ):
        code, _, err = cli(["train", *TRAIN, "-e", "2", *extra, "-dir", tmp_path / "b", "--resume", other], capsys)
        assert_one_line_error(code, err, "comes from a different run", needle, "--force-resume")
        assert not (tmp_path / "b").exists()
    code, _, err = cli(
        ["train", *TRAIN[:4], "8", *TRAIN[5:], "-e", "2", "-dir", tmp_path / "b", "--resume", other], capsys
    )
    assert_one_line_error(code, err, "model resnet18")
    code, _, err = cli(
        ["train", *TRAIN, "-e", "2", "-s", "1", "-dir", tmp_path / "b", "--resume", other, "--force-resume"], capsys
    )
    assert code == 0, err
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["resumed_from"] == str(other) and config["resume_mismatches"] == ["seed 0 (this run: 1)"]
    # the run's own checkpoint resumes as before
    code, _, err = cli(
        ["train", *TRAIN, "-e", "3", "-s", "1", "-dir", tmp_path / "b", "--resume", tmp_path / "b" / "last.pt"], capsys
    )
    assert code == 0, err


def test_a_subset_larger_than_the_split_is_refused_and_the_used_size_recorded(tmp_path, capsys):
    code, _, err = cli(["train", *TRAIN[:-6], "100000000", *TINY, "-e", "1", "-dir", tmp_path / "big"], capsys)
    assert_one_line_error(
        code, err, "--train-subset: the train split of digits has only", "fewer than the 100000000 asked for"
    )
    assert not (tmp_path / "big").exists()
    code, _, err = cli(["train", *TRAIN, "-e", "1", "-dir", tmp_path / "ok"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "ok" / "config.json").read_text())["train_samples"] == 96
    assert json.loads((tmp_path / "ok" / "metrics.json").read_text())["train_samples"] == 96


def test_the_probes_refuse_a_subset_larger_than_the_training_set():
    from stitchkit.data import get_dataset
    from stitchkit.probing import ProbeConfig, probe_model

    model = get_model("resnet18", num_classes=10, in_channels=1, input_size=(28, 28), width=4)
    train, test = get_dataset("digits", "train", augment=False), get_dataset("digits", "test")
    with pytest.raises(StitchkitError, match=f"has only {len(train)} images, fewer than the 100000000"):
        probe_model(
            model,
            ["layer4.1"],
            {"train": train, "test": test},
            config=ProbeConfig(train_subset=100_000_000, epochs=1, device="cpu"),
        )


# -- 6, 7, 13. study configs and options are checked before anything is written ---------------------------


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "names no networks"),
        ("[networks]\n", "names no networks"),
        ("[study]\nname = 'x'\n", "smallest valid config is: [networks] seeds = [0, 1]"),
    ],
)
def test_a_config_without_networks_is_refused(tmp_path, capsys, text, needle):
    config = tmp_path / "c.toml"
    config.write_text(text)
    code, _, err = cli(["study", config, "--out", tmp_path / "s"], capsys)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--rerun", "bogus"], "--rerun 'bogus' is not a unit kind; valid kinds:"),
        (["--workers", "0", "--executor", "pool"], "--workers must be at least 1"),
        (["--address", "ray://x:1"], "--address is for the ray executor"),
    ],
)
def test_bad_study_options_write_nothing(tmp_path, capsys, extra, needle):
    config = tmp_path / "c.toml"
    config.write_text(
        textwrap.dedent("""
        [study]
        dataset = "digits"
        [networks]
        options = { width = 4 }
        seeds = [0, 1]
    """)
        + DISABLED
    )
    code, _, err = cli(["study", config, "--out", tmp_path / "s", *extra], capsys)
    assert_one_line_error(code, err, needle)
    if "--rerun" in extra:
        assert "train" in err and "similarity" in err
    assert not (tmp_path / "s").exists()


def test_a_failed_resume_rewrites_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "study"
    in_process_study(tmp_path, monkeypatch, plan(3, seconds=(0.0, 0.0)), out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "study.log"}
    with pytest.raises(StitchkitError, match="not a unit kind"):
        run_study(study_config(tmp_path), out, rerun=["bogus"], progress=False)
    with pytest.raises(StitchkitError, match="--workers"):
        run_study(study_config(tmp_path), out, executor="pool", workers=0, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "study.log"} == before


# -- 8. ranks above a layer's channel count ------------------------------------------------------------------


def test_ranks_above_the_channel_count_are_clamped_recorded_or_refused(checkpoint, tmp_path, capsys):
    ck1 = tiny_checkpoint(tmp_path / "n1" / "final.pt", seed=1)
    code, out, err = cli(
        [
            "similarity",
            checkpoint,
            ck1,
            "-",
            "-",
            "layer3.1",
            "layer3.1",
            "-m1r",
            "999",
            "8",
            "-m2r",
            "full",
            "--n-samples",
            "40",
            "-d",
            "digits",
            *TINY,
            "-o",
            tmp_path / "sim",
        ],
        capsys,
    )
    assert code == 0, err
    assert (
        "warning: model 1 rank (-m1r) above a layer's channel count" in err and "999 at layer3.1 (16 channels)" in err
    )
    lines = out.splitlines()
    assert lines[1].split()[3:5] == ["999*", "full"] and lines[2].split()[3:5] == ["8", "full"]
    assert "(* a rank above the layer's channels: all of them were used)" in lines
    rows = json.loads((tmp_path / "sim" / "similarity.json").read_text())["results"]
    used = {(r["rank_x"], r["rank_used_x"]) for r in rows}
    assert used == {(999, 16), (8, 8)}
    full = {r["measure"]: r["value"] for r in rows if r["rank_x"] == 999}
    code, _, err = cli(
        [
            "similarity",
            checkpoint,
            ck1,
            "-",
            "-",
            "layer3.1",
            "layer3.1",
            "--n-samples",
            "40",
            "-d",
            "digits",
            *TINY,
            "-o",
            tmp_path / "sim_full",
        ],
        capsys,
    )
    assert code == 0
    rows_full = json.loads((tmp_path / "sim_full" / "similarity.json").read_text())["results"]
    assert full == pytest.approx(
        {r["measure"]: r["value"] for r in rows_full}, rel=1e-4
    )  # rank 999 is the full activation
    # the sensitivity test's candidates: refused
    code, _, err = cli(
        [
            "sensitivity",
            checkpoint,
            ck1,
            "-l",
            "layer3.1",
            "-ranks",
            "999",
            "4",
            "-d",
            "digits",
            *TINY,
            "-o",
            tmp_path / "sens",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "-ranks 999 is above the 16 channels of layer layer3.1")
    assert not (tmp_path / "sens").exists()


def test_probe_ranks_above_the_channel_count_record_the_rank_used(capsys):
    from stitchkit.data import get_dataset
    from stitchkit.probing import ProbeConfig, probe_model

    model = get_model("resnet18", num_classes=10, in_channels=1, input_size=(28, 28), width=4)
    train = torch.utils.data.Subset(get_dataset("digits", "train", augment=False), range(64))
    test = torch.utils.data.Subset(get_dataset("digits", "test"), range(32))
    report = probe_model(
        model,
        ["layer1.0", "layer4.1"],
        {"train": train, "test": test},
        ranks=[None, 8],
        config=ProbeConfig(epochs=1, device="cpu"),
    )
    assert "8 at layer1.0 (4 channels)" in capsys.readouterr().err
    used = {(r.layer, r.rank): r.to_dict()["rank_used"] for r in report.results}
    assert used == {("layer1.0", None): None, ("layer1.0", 8): 4, ("layer4.1", None): None, ("layer4.1", 8): 8}
    assert report.to_csv().splitlines()[0].endswith(",rank_used")


# -- 10. the sensitivity test needs two different networks -----------------------------------------------------


def test_sensitivity_refuses_one_network_and_the_same_network_twice(checkpoint, tmp_path, capsys):
    copy = tmp_path / "copy" / "final.pt"
    copy.parent.mkdir()
    shutil.copyfile(checkpoint, copy)
    common = ["-l", "layer3.1", "-ranks", "4", "-d", "digits", *TINY, "-o", tmp_path / "o"]
    code, _, err = cli(["sensitivity", checkpoint, *common], capsys)
    assert_one_line_error(code, err, "needs at least two networks")
    for twice in ([checkpoint, checkpoint, "--names", "a", "b"], [checkpoint, copy]):
        code, _, err = cli(["sensitivity", *twice, *common], capsys)
        assert_one_line_error(code, err, "are the same network", "give each network once")
    assert not (tmp_path / "o").exists()


# -- 12. files honour the umask --------------------------------------------------------------------------------


@pytest.mark.parametrize("umask,mode", [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        write_json_atomic(tmp_path / "b.json", {"x": 1})
        torch_save_atomic({"x": torch.zeros(1)}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.json", "c.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.pt"]


def test_check_writable_dir_creates_nothing(tmp_path):
    (tmp_path / "afile").write_text("")
    assert check_writable_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    with pytest.raises(StitchkitError, match="is a file, not a folder"):
        check_writable_dir(tmp_path / "afile" / "x")
    with pytest.raises(StitchkitError, match="exists and is not a folder"):
        check_writable_dir(tmp_path / "afile")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# -- 11, 15. a killed driver: its workers die with it, --status shows what was interrupted ------------------------


def test_pool_workers_die_with_a_killed_driver_and_status_says_interrupted(tmp_path, monkeypatch, capsys):
    steps = [{"name": f"long{i}", "seconds": 60, "value": i, "deps": []} for i in range(2)]
    out = tmp_path / "study"
    patch_plan(monkeypatch, steps)
    proc = start_driver(tmp_path, steps, out, executor="pool", workers=2)
    try:
        wait_for(lambda: sum(e == "start" for e, _, _ in events(tmp_path)) == 2, 120, "both units to start")
        workers = {pid for _, _, pid in events(tmp_path)}
        family = descendants(proc.pid)
        assert workers <= family
        status = study_status(study_config(tmp_path), out)
        assert status["driver_running"] and status["totals"]["running"] == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    wait_for(lambda: not any(alive(p) for p in family), 15, f"the driver's processes {sorted(family)} to end")
    assert not any(e == "end" for e, _, _ in events(tmp_path))
    assert not (out / "units").exists() or not [p for p in (out / "units").iterdir() if not p.name.startswith(".")]
    code, text, _ = cli(["study", study_config(tmp_path), "--out", out, "--status"], capsys)
    assert code == 0 and "2 interrupted" in text and "0 running" in text and "run the study again to continue" in text


# -- kill -9 at random moments: exactly one result per unit after resuming ---------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_kill_9_at_a_random_moment_then_resume_gives_one_result_per_unit(tmp_path, monkeypatch, seed):
    steps = plan(10, seed=seed)
    out = tmp_path / "study"
    rng = random.Random(1000 + seed)
    proc = start_driver(tmp_path, steps, out)
    try:
        wait_for(lambda: (out / "study.sqlite").exists() or proc.poll() is not None, 120, "the study to start")
        time.sleep(rng.uniform(0.0, 1.2 * sum(s["seconds"] for s in steps)))
    finally:
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = (
        {p.name for p in (out / "units").iterdir() if not p.name.startswith(".")} if (out / "units").exists() else set()
    )
    recorded = {}
    if (out / "study.sqlite").exists() and store_problem(out / "study.sqlite") is None:
        recorded = {label: r.finished for label, r in store_rows(out).items() if r.status == "done"}
    summary = in_process_study(tmp_path, monkeypatch, steps, out)
    assert summary.counts == {"pending": 0, "running": 0, "done": len(steps), "failed": 0}
    rows = store_rows(out)
    assert len(rows) == len(steps) and {label: r.metrics["value"] for label, r in rows.items()} == expected_values(
        steps
    )
    for label, when in recorded.items():  # recorded before the kill: kept as it was
        assert rows[label].finished == when and rows[label].attempts == 1
    by_folder = {u.folder_name: u.label for u in fault_driver.build_units(steps)}
    again = {n for e, n, _ in events(tmp_path, after=killed_at) if e == "start"}
    assert not again & {by_folder[f] for f in finished}, "a unit whose result was on disk was computed again"
    folders = sorted(p.name for p in (out / "units").iterdir())
    assert sorted(by_folder) == folders  # one folder per unit, no temporary ones left


def test_a_unit_on_disk_but_not_recorded_is_adopted_not_recomputed(tmp_path, monkeypatch):
    """The narrowest window of a kill: the unit's folder was renamed into place, the driver died before
    recording it. The next run takes the result from the folder instead of computing it again."""
    steps = plan(4, seconds=(0.0, 0.0))
    out = tmp_path / "study"
    in_process_study(tmp_path, monkeypatch, steps, out)
    with sqlite3.connect(out / "study.sqlite") as db:
        db.execute("UPDATE units SET status = 'running', metrics = NULL WHERE label IN ('u1', 'u3')")
    killed_at = time.time()
    summary = in_process_study(tmp_path, monkeypatch, steps, out)
    assert summary.ran == 2 and not events(tmp_path, after=killed_at)
    assert {label: r.metrics["value"] for label, r in store_rows(out).items()} == expected_values(steps)


# -- concurrent writers ----------------------------------------------------------------------------------------------


def _register_many(root: str, worker: int, n: int) -> None:
    from stitchkit.ood.registry import DetectorRegistry

    registry = DetectorRegistry(root)
    for i in range(n):
        registry.update(f"w{worker}-{i}.pt", {"source_layer": "l", "worker": worker, "i": i})


def _probe_cache_many(path: str, worker: int, n: int) -> None:
    from stitchkit.probing.cache import ProbeCache

    for i in range(n):
        cache = ProbeCache(path)
        cache.put(f"w{worker}-{i}", {"val_acc": i / n, "network": str(worker)})
        cache.save()


def _atomic_many(path: str, worker: int, n: int) -> None:
    for i in range(n):
        write_json_atomic(path, {"worker": worker, "i": i, "pad": "x" * 20000})


def _run_concurrently(target, where: str, per_worker: int, workers: int = 4) -> list:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=target, args=(where, w, per_worker)) for w in range(workers)]
    for p in procs:
        p.start()
    return procs


@pytest.mark.parametrize(
    "target,per_worker", [(_register_many, 25), (_probe_cache_many, 15)], ids=["detector registry", "probe cache"]
)
def test_concurrent_writers_lose_nothing(tmp_path, target, per_worker):
    where = str(tmp_path / ("reg" if target is _register_many else "probes.json"))
    procs = _run_concurrently(target, where, per_worker)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    if target is _register_many:
        entries = json.loads((tmp_path / "reg" / "meta.json").read_text())
    else:
        entries = json.loads((tmp_path / "probes.json").read_text())
    assert len(entries) == 4 * per_worker


def test_readers_never_see_a_half_written_file(tmp_path):
    target = tmp_path / "shared.json"
    write_json_atomic(target, {"worker": -1, "i": -1, "pad": ""})
    procs = [mp.get_context("fork").Process(target=_atomic_many, args=(str(target), w, 40)) for w in range(3)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs):
        data = json.loads(target.read_text())  # would raise on a partial file
        assert set(data) == {"worker", "i", "pad"}
        reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reads > 0 and sorted(p.name for p in tmp_path.iterdir()) == ["shared.json"]


def test_a_second_driver_is_refused_and_writes_nothing(tmp_path, monkeypatch):
    steps = [{"name": "long", "seconds": 30, "value": 1, "deps": []}]
    out = tmp_path / "study"
    patch_plan(monkeypatch, steps)
    proc = start_driver(tmp_path, steps, out)
    try:
        wait_for(lambda: any(e == "start" for e, _, _ in events(tmp_path)), 120, "the unit to start")
        before = (out / "config.json").stat().st_mtime_ns
        with pytest.raises(StitchkitError, match="already being run by another stitchkit process"):
            run_study(study_config(tmp_path), out, progress=False)
        assert (out / "config.json").stat().st_mtime_ns == before
        assert study_status(study_config(tmp_path), out)["totals"]["running"] == 1  # a concurrent reader
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
