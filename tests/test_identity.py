"""A study's identity: units keep the roles of their dependencies (A → B is not B → A), networks are
identified by content wherever they and the study lie, and a store written before that (version 1,
``tests/fixtures/store_v1``) is upgraded keeping exactly the results whose identity is unambiguous."""

import json
import os
import re
import shutil
import sqlite3
import textwrap
from pathlib import Path

import pytest

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.study import Store, migrate, run_study, study_status
from stitchkit.study.config import validate
from stitchkit.study.migrate import legacy_unit_id
from stitchkit.study.plan import plan_study
from stitchkit.study.report import write_report
from stitchkit.study.store import STORE_VERSION
from stitchkit.utils.names import network_names

FIXTURE = Path(__file__).parent / "fixtures" / "store_v1"
SECTIONS_OFF = "\n".join(f"[{s}]\nenabled = false" for s in ("ood", "probes", "sensitivity", "specificity"))
# the version-1 fixture's similarity units were computed without intervals or a null: with them off they keep their
# identity
# (and with the policy that was then the default, auto_original, named in _config)
SECTIONS_OFF += "\n[uncertainty]\nsimilarity_bootstrap = 0\npermutations = 0"


def _config(
    path: Path, checkpoints: list[str], pairs: str = "all", name: str = "legacy", names: list[str] | None = None
) -> Path:
    """The config the fixture was run with (tests/fixtures/store_v1/study.toml), with these checkpoints (and network
    names)."""
    path.write_text(
        textwrap.dedent(f"""
        [study]
        name = "{name}"
        dataset = "digits"
        device = "cpu"
        [networks]
        checkpoints = {json.dumps(checkpoints)}
        names = {json.dumps(names or [])}
        [layers]
        front = ["layer1.0", "layer4.1"]
        end = ["layer1.0", "layer4.1"]
        [stitching]
        methods = ["dm"]
        pairs = "{pairs}"
        fit_samples = 50
        eval_samples = 50
        [similarity]
        pairs = "{pairs}"
        n_samples = 50
        measures = ["cka"]
        policy = "auto_original"
    """)
        + SECTIONS_OFF
        + "\n"
    )
    return path


def _fixture_study(tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the version-1 study, and its two networks (copies of the checkpoints it measured, in config order)."""
    study = tmp_path / "study"
    shutil.copytree(FIXTURE, study)
    with sqlite3.connect(study / "study.sqlite") as db:
        rows = db.execute("SELECT id, label FROM units WHERE kind = 'network' ORDER BY label").fetchall()
    nets = []
    for i, (unit_id, _) in enumerate(rows):
        target = tmp_path / "nets" / f"n{i}" / "final.pt"
        target.parent.mkdir(parents=True)
        shutil.copyfile(study / "units" / f"network-{unit_id}" / "final.pt", target)
        nets.append(str(target))
    return study, nets


def _done(study: Path) -> list:
    with Store(study / "study.sqlite", readonly=True) as store:
        return store.all(status="done")


def _network_hash(records, unit_id: str) -> str:
    return next(r.model_hashes["network"] for r in records if r.id == unit_id)


def _assert_roles_kept(records) -> None:
    """Every stitch unit's result is of its own direction: its front and end networks are its deps in order."""
    for r in records:
        if r.kind == "stitch":
            assert r.model_hashes["front"] == _network_hash(records, r.deps[0])
            assert r.model_hashes["end"] == _network_hash(records, r.deps[1])


def test_the_fixture_is_a_version_1_store_that_lost_a_direction():
    with sqlite3.connect(FIXTURE / "study.sqlite") as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM units")]
        rows = db.execute("SELECT id, kind, config, deps FROM units").fetchall()
        assert db.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchone() is None
    assert sorted(kinds) == ["network", "network", "similarity", "stitch"]  # 6 planned, B → A never computed
    for unit_id, kind, config, deps in rows:  # the legacy hash is the one that wrote it
        assert legacy_unit_id(kind, json.loads(config), json.loads(deps)) == unit_id


def test_a_version_1_store_is_upgraded_keeping_unambiguous_results_and_computing_the_lost_direction(tmp_path, capsys):
    study, nets = _fixture_study(tmp_path)
    config = _config(tmp_path / "study.toml", nets)
    summary = run_study(config, study, progress=False)
    err = capsys.readouterr().err
    assert (
        "upgraded the study store from version 1 to 2" in err
        and "kept 4 finished unit(s)" in err
        and "run again" not in err
    )
    assert summary.ran == 2 and summary.counts["done"] == 6  # only B → A: the stitch and the similarity
    records = _done(study)
    assert sorted(r.kind for r in records) == ["network", "network", "similarity", "similarity", "stitch", "stitch"]
    _assert_roles_kept(records)
    stitches = [r for r in records if r.kind == "stitch"]
    assert {tuple(r.deps) for r in stitches} == {
        (stitches[0].deps[0], stitches[0].deps[1]),
        (stitches[0].deps[1], stitches[0].deps[0]),
    }
    folders = sorted(p.name for p in (study / "units").iterdir())
    assert folders == sorted(
        f"{r.kind}-{r.id}" for r in records
    )  # every kept unit moved to its new folder, nothing else left
    for r in records:  # each result file names the unit by its new identity (a rebuilt store reads them)
        spec = json.loads((study / "units" / f"{r.kind}-{r.id}" / "unit_result.json").read_text())["unit"]
        assert spec["deps"] == r.deps
    with Store(study / "study.sqlite", readonly=True) as store:
        assert store.version == STORE_VERSION and store.get_meta(migrate.PENDING_KEY) is None
    assert run_study(config, study, progress=False).ran == 0


def test_a_result_whose_roles_the_old_store_cannot_tell_is_recomputed(tmp_path, capsys):
    study, nets = _fixture_study(tmp_path)
    stitch = next(study.glob("units/stitch-*"))
    (stitch / "unit_result.json").unlink()  # a study from before unit result files: which direction ran is unknown
    summary = run_study(_config(tmp_path / "study.toml", nets), study, progress=False)
    err = capsys.readouterr().err
    assert (
        "kept 3 finished unit(s)" in err
        and "1 finished unit(s) whose inputs' roles the old store cannot tell run again" in err
    )
    assert summary.ran == 3 and summary.counts["done"] == 6
    assert not stitch.exists()
    _assert_roles_kept(_done(study))


def test_an_upgrade_cut_short_after_its_commit_is_finished_by_the_next_run(tmp_path, monkeypatch):
    study, nets = _fixture_study(tmp_path)
    real = migrate._finish_moves
    calls = []

    def crash_once(study_dir, store):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt  # killed between the commit and the folder moves
        real(study_dir, store)

    monkeypatch.setattr(migrate, "_finish_moves", crash_once)
    config = _config(tmp_path / "study.toml", nets)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, study, progress=False)
    monkeypatch.setattr(migrate, "_finish_moves", real)
    summary = run_study(config, study, progress=False)
    assert summary.ran == 2 and summary.counts["done"] == 6
    _assert_roles_kept(_done(study))


def test_status_and_findings_read_a_version_1_store_after_upgrading_it(tmp_path, capsys):
    study, nets = _fixture_study(tmp_path)
    config = _config(tmp_path / "study.toml", nets)
    status = study_status(config, study)
    assert "upgraded the study store" in capsys.readouterr().err
    assert status["by_kind"]["stitch"]["done"] == 1 and status["by_kind"]["stitch"]["pending"] == 1
    assert status["by_kind"]["network"]["done"] == 2


@pytest.fixture(scope="module")
def two_networks(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    _, nets = _fixture_study(root)
    return nets


def test_pairs_all_gives_both_directions_in_store_status_and_report(tmp_path, two_networks):
    config = _config(tmp_path / "all.toml", two_networks)
    summary = run_study(config, tmp_path / "s", progress=False)
    assert summary.ran == 6 and summary.counts["done"] == 6
    records = _done(tmp_path / "s")
    _assert_roles_kept(records)
    labels = sorted(r.label for r in records if r.kind in ("stitch", "similarity"))
    assert labels == ["similarity n0↔n1", "similarity n1↔n0", "stitch dm n0→n1", "stitch dm n1→n0"]
    assert study_status(config, tmp_path / "s")["by_kind"]["stitch"] == {
        "done": 2,
        "running": 0,
        "interrupted": 0,
        "failed": 0,
        "pending": 0,
    }
    report = Path(write_report(tmp_path / "s")).read_text()
    for label in labels:
        assert label in report
    log = (tmp_path / "s" / "study.log").read_text()
    for line in log.splitlines():  # every unit that starts is the one that finishes
        if " INFO done " in line:
            assert f"start {line.split(' INFO done ')[1].rsplit(' in ', 1)[0]} (" in log


def test_a_config_with_the_networks_in_the_other_order_computes_its_own_grid(tmp_path, two_networks):
    study = tmp_path / "s"
    run_study(_config(tmp_path / "ab.toml", two_networks, pairs="reference"), study, progress=False)
    summary = run_study(_config(tmp_path / "ba.toml", two_networks[::-1], pairs="reference"), study, progress=False)
    assert summary.ran == 2  # B → A: its stitch grid and its similarity, not A → B's handed over
    records = _done(study)
    assert len([r for r in records if r.kind == "stitch"]) == 2
    _assert_roles_kept(records)


def test_renaming_the_networks_re_uses_every_unit_and_relabels_the_report(tmp_path, two_networks):
    study = tmp_path / "s"
    assert run_study(_config(tmp_path / "a.toml", two_networks, pairs="reference"), study, progress=False).ran == 4
    renamed = _config(tmp_path / "b.toml", two_networks, pairs="reference", names=["fm_r18_s0", "fm_r18_s1"])
    assert run_study(renamed, study, progress=False).ran == 0  # names label; identity is the networks' content
    labels = sorted(r.label for r in _done(study))
    assert labels == [
        "network fm_r18_s0",
        "network fm_r18_s1",
        "similarity fm_r18_s0↔fm_r18_s1",
        "stitch dm fm_r18_s0→fm_r18_s1",
    ]
    report = Path(write_report(study)).read_text()
    assert "stitch dm fm_r18_s0→fm_r18_s1" in report and "n0→n1" not in report


def test_named_seeds_plan_the_same_units_under_other_labels(tmp_path):
    raw = {
        "study": {"dataset": "digits"},
        "networks": {"seeds": [0, 1], "options": {"width": 4}},
        "layers": {"front": ["layer1.0"], "end": ["layer1.0"]},
        "ood": {"enabled": False},
        "sensitivity": {"enabled": False},
        "specificity": {"enabled": False},
    }
    plain = plan_study(validate(raw), tmp_path)
    named = plan_study(validate({**raw, "networks": {**raw["networks"], "names": ["a_s0", "a_s1"]}}), tmp_path)
    assert [u.id for u in named] == [u.id for u in plain]
    assert [u.label for u in plain][:2] == ["train resnet18 s0", "train resnet18 s1"]
    assert [u.label for u in named][:3] == ["train a_s0", "train a_s1", "stitch dm a_s0→a_s1"]


@pytest.mark.parametrize(
    "names, message",
    [
        (["a"], "1 name(s) for 2 network(s)"),
        (["a", "a"], "'a' more than once"),
        (["a", ""], "names[1] = '' is not a usable name"),
        (["a", "x/y"], "names[1] = 'x/y'"),
        (["a b", "c"], "names[0] = 'a b'"),
        (["a→b", "c"], "names[0]"),
        ([".hidden", "c"], "not starting with a dot"),
        (["a", 3], "names[1] = 3"),
    ],
)
def test_network_names_are_one_distinct_usable_name_per_network(names, message):
    with pytest.raises(StitchkitError, match=re.escape(message)):
        validate({"networks": {"seeds": [0, 1], "names": names}})


def test_plans_never_repeat_an_id(tmp_path):
    config = validate(
        {
            "study": {"dataset": "digits"},
            "networks": {"seeds": [0, 1, 2], "options": {"width": 4}},
            "stitching": {"pairs": "all", "methods": ["dm", "tlm", "tlm_from_dm"]},
            "similarity": {"pairs": "all"},
            "ood": {"self_pairs": True},
        }
    )
    units = plan_study(config, tmp_path)
    assert len({u.id for u in units}) == len(units)
    assert sum(u.kind == "stitch" for u in units) == 6 * 3 and sum(u.kind == "similarity" for u in units) == 6
    assert sum(u.kind == "ood" for u in units) == 18


def test_a_finished_study_moved_or_in_another_clone_is_still_finished(tmp_path, two_networks, monkeypatch):
    clone = tmp_path / "clone1"
    (clone / "nets").mkdir(parents=True)
    for i, net in enumerate(two_networks):
        shutil.copyfile(net, clone / "nets" / f"n{i}.pt")
    _config(clone / "study.toml", ["nets/n0.pt", "nets/n1.pt"])  # relative to the working folder, as the README says
    monkeypatch.chdir(clone)
    assert run_study("study.toml", "runs/s", progress=False).counts["done"] == 6
    other = tmp_path / "clone2"
    shutil.copytree(clone, other)  # another clone of the same project, with the finished study in it
    monkeypatch.chdir(other)
    status = study_status("study.toml", "runs/s")
    assert status["totals"]["done"] == 6 and status["totals"]["pending"] == 0
    assert run_study("study.toml", "runs/s", progress=False).ran == 0
    moved = tmp_path / "elsewhere" / "s"
    moved.parent.mkdir()
    os.replace(other / "runs" / "s", moved)  # the study folder itself moved
    assert run_study("study.toml", moved, progress=False).ran == 0
    assert main(["study", "study.toml", "--out", str(moved), "--findings"]) == 0


@pytest.mark.parametrize(
    "paths, names",
    [
        (["/r/resnet18_w32_seed0.pt", "/r/resnet18_w32_seed1.pt"], ["resnet18_w32_seed0", "resnet18_w32_seed1"]),
        (["/runs/r18_s0/final.pt", "/runs/r18_s1/final.pt"], ["r18_s0", "r18_s1"]),
        (["/a/x/run/final.pt", "/b/x/run/final.pt"], ["a/x/run", "b/x/run"]),
        (["/a/final.pt", "/a/b.pt"], ["final", "b"]),
        (["/a/net.pt", "/a/net.pth"], ["/a/net.pt", "/a/net.pth"]),
        (["/only/final.pt"], ["only"]),  # a run folder names its network
        (["runs/fm_r18_s0/final.pt"], ["fm_r18_s0"]),
        (["/a/final.pt", "/b/last.pt"], ["a", "b"]),
    ],
)
def test_networks_that_share_a_file_name_get_distinct_labels(paths, names):
    assert network_names([Path(p) for p in paths]) == names
