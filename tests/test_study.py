"""Studies: config validation, unit identity, the SQLite store, resuming after kill -9, failures,
executors (in-process, process pool, Ray) giving the same store contents, and the report."""

import csv
import html
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.ood.matrices import METRIC_KINDS
from stitchkit.study import Store, run_study, study_status, validate
from stitchkit.study import runner as runner_module
from stitchkit.study.artifact_names import artifact_stem
from stitchkit.study.ood_records import NORM_RATIO_CAPTION, NORM_RATIO_MATRIX, SCORE_TABLE
from stitchkit.study.report import write_report
from stitchkit.study.uncertainty import UncertaintySettings, interval_matrices, scalar_intervals
from stitchkit.study.units import Unit, register_unit_kind

DISABLED = "\n".join(
    f"[{s}]\nenabled = false" for s in ("stitching", "similarity", "ood", "probes", "sensitivity", "specificity")
)


def train_only_config(tmp_path, seeds=(0, 1), name="mini"):
    path = tmp_path / f"{name}.toml"
    path.write_text(
        textwrap.dedent(f"""
        [study]
        name = "{name}"
        dataset = "digits"
        device = "cpu"

        [networks]
        model = "resnet18"
        options = {{ width = 4 }}
        seeds = {list(seeds)}
        epochs = 1
        batch_size = 64
        train_subset = 160
        augment = false
    """)
        + DISABLED
        + "\n"
    )
    return path


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"stiching": {}}, "unknown section [stiching]"),
        ({"stitching": {"method": ["dm"]}}, "unknown key stitching.method; keys of [stitching]: enabled, methods"),
        ({"stitching": {"methods": ["dmm"]}}, "stitching.methods has 'dmm'; allowed: dm, tlm, tlm_from_dm"),
        ({"networks": {"epochs": 0}}, "networks.epochs must be ≥ 1"),
        ({"networks": {"epochs": "3"}}, "networks.epochs must be an integer"),
        ({"networks": {"seeds": [0, 0]}}, "duplicates"),
        ({"similarity": {"measures": ["cka", "nope"]}}, "similarity.measures has 'nope'"),
        ({"ood": {"enabled": 1}}, "ood.enabled must be true/false"),
    ],
)
def test_config_errors_name_the_key_and_the_allowed_values(raw, message):
    with pytest.raises(StitchkitError) as info:
        validate(raw)
    assert message in str(info.value)


def test_defaults_and_none():
    config = validate({"networks": {"seeds": [0, 1, 2]}, "ood": {"sanity": "none"}})
    assert (
        config["ood"]["sanity"] is None
        and config["stitching"]["fit_samples"] == 100
        and config["networks"]["epochs"] == 3
    )


def test_unit_ids_are_hashes_of_what_determines_the_result():
    a = Unit("train", {"seed": 0, "epochs": 1}, (), "x")
    assert a.id == Unit("train", {"epochs": 1, "seed": 0}, (), "another label").id
    assert a.id != Unit("train", {"seed": 1, "epochs": 1}).id
    # the order of the dependencies is their role (front, end): A → B and B → A are different units
    assert Unit("stitch", {"m": 1}, ("a", "b")).id != Unit("stitch", {"m": 1}, ("b", "a")).id
    assert Unit("stitch", {"m": 1}, ("a",)).id != Unit("stitch", {"m": 1}, ("c",)).id


def test_network_pairings():
    from stitchkit.study.planning import pairs as _pairs

    assert _pairs(3, "reference") == [(0, 1), (0, 2)]
    assert _pairs(3, "first") == [(0, 1)]
    assert _pairs(3, "all") == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert _pairs(2, "self") == [(0, 0), (1, 1)]
    assert _pairs(2, "reference_and_self") == [(0, 0), (0, 1)]
    assert _pairs(3, "reference_and_self") == [(0, 0), (0, 1), (0, 2)]
    assert _pairs(3, "first_and_self") == [(0, 0), (0, 1)]
    with pytest.raises(StitchkitError, match="at least two networks"):
        _pairs(1, "first")


def test_store_uses_wal_and_planning_is_idempotent(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        units = [Unit("train", {"seed": s}, (), f"t{s}") for s in range(3)]
        assert store.add_planned(units) == 3
        assert store.add_planned(units) == 0
        store.mark_running(units[0].id, "w")
        assert store.reset_interrupted() == 1
        assert store.counts()["pending"] == 3


def test_a_study_killed_half_way_finishes_with_one_result_per_unit(tmp_path):
    config = train_only_config(tmp_path, seeds=(0, 1, 2))
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "stitchkit", "study", str(config), "--out", str(out), "--no-progress", "--no-report"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    deadline = time.time() + 240
    done_before = []
    while time.time() < deadline:
        time.sleep(0.3)
        if (out / "study.sqlite").exists():
            try:
                with sqlite3.connect(out / "study.sqlite") as db:
                    done_before = db.execute("SELECT id, finished FROM units WHERE status = 'done'").fetchall()
            except sqlite3.OperationalError:
                continue
            if done_before:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert done_before, "no unit finished before the deadline"
    status = study_status(config, out)
    assert status["totals"]["done"] < 3 or status["units"] == 3
    summary = run_study(config, out, progress=False)
    assert summary.counts == {"pending": 0, "running": 0, "done": 3, "failed": 0}
    with Store(out / "study.sqlite") as store:
        records = {r.id: r for r in store.all()}
    assert len(records) == 3
    for unit_id, finished in done_before:
        assert records[unit_id].finished == finished and records[unit_id].attempts == 1  # never repeated
    assert not list((out / "units").glob(".tmp-*")), "a temporary unit folder was left behind"
    assert len(list((out / "units").iterdir())) == 3


def test_rerun_recomputes_finished_units_of_that_kind(tmp_path):
    config = train_only_config(tmp_path, seeds=(0,))
    run_study(config, tmp_path / "s", progress=False)
    with Store(tmp_path / "s" / "study.sqlite") as store:
        before = store.all()[0]
    summary = run_study(config, tmp_path / "s", progress=False, rerun=["train"])
    with Store(tmp_path / "s" / "study.sqlite") as store:
        after = store.all()[0]
    assert summary.ran == 1 and after.attempts == 2 and after.finished > before.finished
    assert after.metrics["seconds"] != before.metrics["seconds"]  # really recomputed, not the old folder adopted
    timing = {"seconds", "seconds_per_epoch"}
    assert {k: v for k, v in after.metrics.items() if k not in timing} == {
        k: v for k, v in before.metrics.items() if k not in timing
    }


def test_the_report_shows_the_last_configs_units_only(tmp_path):
    run_study(train_only_config(tmp_path, seeds=(0, 1)), tmp_path / "s", progress=False)
    run_study(train_only_config(tmp_path, seeds=(0,), name="smaller"), tmp_path / "s", progress=False)
    with Store(tmp_path / "s" / "study.sqlite") as store:
        assert len(store.all()) == 2  # the seed-1 network stays stored (a config that asks for it again reuses it)
    text = write_report(tmp_path / "s").read_text()
    assert "s0" in text and "s1" not in text


@register_unit_kind("test_echo", "test: returns its parameter", uses_gpu=False)
def _echo(unit, ctx):
    if unit.params.get("fail"):
        raise ValueError("boom")
    (ctx.out_dir / "value.txt").write_text(str(unit.params["value"]))
    total = sum(d["metrics"]["value"] for d in ctx.deps.values())
    return {
        "metrics": {
            "value": unit.params["value"] + total,
            "matrices": {
                "m": {
                    "rows": ["a", "b"],
                    "cols": ["c", "d"],
                    "values": [[1.0, 0.5], [None, 0.0]],
                    "kind": "similarity",
                    "range": [0, 1],
                }
            },
            "tables": {"t": [{"x": 1, "y": 2.5}]},
        },
        "artifacts": {"value": ctx.out_dir / "value.txt"},
    }


def test_a_failing_unit_is_recorded_and_the_rest_continue(tmp_path, monkeypatch):
    ok = Unit("test_echo", {"value": 1}, (), "ok")
    bad = Unit("test_echo", {"value": 2, "fail": True}, (), "bad")
    child_of_bad = Unit("test_echo", {"value": 3}, (bad.id,), "child of bad")
    child_of_ok = Unit("test_echo", {"value": 4}, (ok.id,), "child of ok")
    monkeypatch.setattr(runner_module, "plan_study", lambda config, study_dir: [ok, bad, child_of_bad, child_of_ok])
    config = train_only_config(tmp_path)
    summary = run_study(config, tmp_path / "s", progress=False)
    assert summary.counts["done"] == 2 and summary.counts["failed"] == 2
    with Store(tmp_path / "s" / "study.sqlite") as store:
        by_label = {r.label: r for r in store.all()}
    assert "boom" in by_label["bad"].error
    assert "dependency bad failed" in by_label["child of bad"].error
    assert by_label["child of ok"].metrics["value"] == 5  # got its dependency's result
    report = write_report(tmp_path / "s")
    text = report.read_text()
    assert "Failed units" in text and "boom" in text and "data:image/png;base64" in text
    assert (report.parent / "figures").glob("*.pdf")
    assert any(p.suffix == ".parquet" for p in (report.parent / "tables").iterdir())
    # a second run retries the failed unit (only it runs; its dependant is skipped again)
    summary = run_study(config, tmp_path / "s", progress=False)
    assert summary.ran == 1 and summary.counts["done"] == 2


def _store_contents(study_dir):
    with Store(Path(study_dir) / "study.sqlite") as store:
        return {r.id: (r.status, r.model_hashes, r.metrics["test_acc"]) for r in store.all()}


@pytest.mark.parametrize("executor", ["pool", "ray"])
def test_executors_give_the_same_store_contents_as_in_process(tmp_path, executor):
    config = train_only_config(tmp_path)
    run_study(config, tmp_path / "inline", progress=False)
    run_study(config, tmp_path / executor, executor=executor, workers=2, progress=False)
    assert _store_contents(tmp_path / "inline") == _store_contents(tmp_path / executor)
    if executor == "ray":
        import ray

        ray.shutdown()


def test_cli_status_schema_and_bad_config(tmp_path, capsys):
    config = train_only_config(tmp_path, seeds=(0,))
    assert main(["study", str(config), "--out", str(tmp_path / "s"), "--status"]) == 0
    assert "1 units" in capsys.readouterr().out
    assert main(["study", "--schema"]) == 0
    schema = capsys.readouterr().out
    assert "[stitching]" in schema
    # a default of None is a real null, not the string "none" (which is a value of its own, e.g. the LR schedule's)
    assert "# data_root = null  — " in schema and '# scheduler = "none"  — ' in schema
    defaults = {
        line[2:].split(" = ", 1)[0]: line.split(" = ", 1)[1].split("  — ")[0]
        for line in schema.splitlines()
        if line.startswith("# ") and " = " in line and "  — " in line
    }
    assert defaults["group_size"] == "null" and '"none"' not in {
        defaults[k] for k in ("data_root", "group_size", "weights", "layer")
    }
    bad = tmp_path / "bad.toml"
    bad.write_text("[networks]\nepochs = -1\n")
    assert main(["study", str(bad)]) == 2
    assert "networks.epochs must be ≥ 1" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[networks\n")
    assert main(["study", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_every_unit_kind_end_to_end(tmp_path, monkeypatch):
    """Two tiny networks through every method: stitch grids (DM, TLM), detectors and the OOD test,
    similarity, probes, sensitivity and specificity; then the report shows their matrices. The study
    folder is given as a relative path, as users type it (units must still find each other's files)."""
    text = (Path(__file__).parent / "configs" / "tiny_study.toml").read_text()
    config = (
        tmp_path / "tiny_study.toml"
    )  # the specificity test measures dm_residual too, so that C6 is testable (and resampled)
    config.write_text(
        text.replace('measures = ["cka", "procrustes"]\n', 'measures = ["cka", "procrustes", "dm_residual"]\n')
    )
    assert config.read_text() != text
    monkeypatch.chdir(tmp_path)
    summary = run_study(config, Path("s"), progress=False)
    assert summary.counts == {"pending": 0, "running": 0, "done": 12, "failed": 0}
    with Store(tmp_path / "s" / "study.sqlite") as store:
        by_kind = {}
        for r in store.all():
            by_kind.setdefault(r.kind, []).append(r)
    dm = next(r for r in by_kind["stitch"] if r.config["method"] == "dm")
    acc = dm.metrics["matrices"]["DM accuracy"]
    assert acc["rows"] == ["layer1.0", "layer4.1"] and all(0 <= v <= 1 for row in acc["values"] for v in row)
    assert dm.model_hashes["front"] != dm.model_hashes["end"] and dm.conventions
    # the tiny networks are trained without augmentation, and what trains through them follows (recorded)
    tlm = next(r for r in by_kind["stitch"] if r.config["method"] == "tlm")
    assert tlm.conventions["augmentation"].startswith("none (") and tlm.config["augment"] is False
    assert by_kind["detectors"][0].conventions["pretrain_augmentation"].startswith("none (")
    assert by_kind["probes"][0].conventions["augmentation"].startswith("none")
    ood = by_kind["ood"][0].metrics["matrices"]
    assert {"AUROC (energy)", "AUROC (mahalanobis)", "AUROC (knn)"} <= set(ood)
    assert set(by_kind["similarity"][0].metrics["matrices"]) == {"cka", "pwcca", "procrustes"}
    # the tests reused the probes units' probes (entries written by a probes unit name its network by the unit label)
    cache = json.loads((tmp_path / "s" / "cache" / "probe_cache.json").read_text())
    shared = [e for e in cache.values() if e["layer"] == "layer4.1" and e["rank"] is None]
    assert len(shared) == 2 and all(e["network"].startswith("train ") for e in shared)
    sens = by_kind["sensitivity"][0].metrics["tables"]
    assert any(row["measure"] == "cka" for rows in sens.values() for row in rows)
    text = write_report(tmp_path / "s").read_text()
    for needle in (
        "DM accuracy",
        "TLM accuracy",
        "AUROC (energy)",
        "cka",
        "probe accuracy",
        "sensitivity test",
        "Base networks",
    ):
        assert needle in text, needle
    _check_readable_report(by_kind, tmp_path / "s", text)
    for unit in by_kind["ood"]:
        _check_ood_explanations(unit, tmp_path / "s", text)
    _check_how_sure(tmp_path / "s", [r for rs in by_kind.values() for r in rs])


def _check_how_sure(study_dir, records):
    """Issue 19: every matrix of the study gets an interval, every network's test accuracy too, and C6 (the
    sensitivity and specificity tests) a robustness, its resamples made from what the tests kept."""
    settings = UncertaintySettings.from_config({})
    for r in records:
        for name, entry in interval_matrices(study_dir, r, settings).items():
            assert entry.get("lower") is not None and entry.get("upper") is not None, (r.label, name)
        if r.kind == "train":
            lower, upper = scalar_intervals(study_dir, r, settings)["test_acc"]
            assert lower <= r.metrics["test_acc"] <= upper
    findings = json.loads((study_dir / "report" / "findings.json").read_text())
    c6 = next(f for f in findings["findings"] if f["claim"] == "C6")
    assert c6["verdict"] in ("supported", "not supported") and 0 <= c6["robustness"] <= 1, c6
    note = c6["robustness_note"]
    assert "held fixed: sensitivity " in note and "| specificity " in note and "the comparisons" in note
    assert (
        "cached without per-image hits" not in note
    )  # the probes units' probes, shared through the cache, kept their hits
    base = (study_dir / "report" / "tables" / "base_accuracy.csv").read_text().splitlines()[0]
    assert "test accuracy (lower)" in base and "test accuracy (upper)" in base


def _check_readable_report(by_kind, study_dir, text):
    """What the report shows people: no raw nan, tables in reading order, the sanity table once per end network
    with its failures marked, each stitch accuracy's relative accuracy beside it, AUROC stored (and so drawn) as the
    API's."""
    words = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"\bnan\b", words, re.IGNORECASE) and ">None<" not in words
    sanity = [r.metrics["tables"] for r in by_kind["ood"]]
    name = next(n for n in sanity[0] if n.startswith("detector sanity check"))
    assert sanity[0][name] == sanity[1][name]  # both OOD units test the same end network's detectors
    assert words.count(f">{name}</h4>") == 1
    assert words.count(f"{name}: the same table as") == 1
    table = words.split(f">{name}</h4>", 1)[1].split("</table>", 1)[0]
    head = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", table)
    assert head == ["detector", "layer", "passes", "auroc", "aupr", "fpr95"]
    failing = sum(row["auroc"] < 0.9 for row in sanity[0][name])  # the default detector_sanity
    assert table.count("<tr class=fail>") == failing and table.count("<td>no</td>") == failing
    scores = words.split(f">{SCORE_TABLE}</h4>", 1)[1].split("</tr>", 1)[0]
    assert re.findall(r"<th(?: [^>]*)?>(.*?)</th>", scores)[:4] == [
        "end_layer",
        "detector",
        "activations",
        "front_layer",
    ]
    for stitch in by_kind["stitch"]:
        title = {"dm": "DM", "tlm": "TLM"}[stitch.config["method"]]
        stem = artifact_stem("stitch", stitch.label, f"{title} relative accuracy")
        absolute = words.index(f'id="{artifact_stem("stitch", stitch.label, f"{title} accuracy")}"')
        assert (
            absolute < words.index(f'id="{stem}"') < words.index(f"{stitch.label}: {title} accuracy: values")
        )  # right beside it
        rows = list(csv.reader((study_dir / "report" / "tables" / f"{stem}.csv").open()))
        expected = (
            np.array(stitch.metrics["matrices"][f"{title} accuracy"]["values"], dtype=float)
            / stitch.metrics["end_accuracy"]
        )
        width = expected.shape[1]  # the values, then their (lower) and (upper) bounds
        table = np.array([row[1:] for row in rows[1:]], dtype=float)
        np.testing.assert_allclose(table[:, :width], expected, rtol=1e-9)
        assert rows[0][1 + width].endswith("(lower)") and rows[0][1 + 2 * width].endswith("(upper)")
        assert (table[:, width : 2 * width] <= expected + 1e-12).all() and (
            expected <= table[:, 2 * width :] + 1e-12
        ).all()
    for unit in by_kind["ood"]:
        assert unit.metrics["matrices"]["AUROC (energy)"]["kind"] == METRIC_KINDS["auroc"][0]


def _check_ood_explanations(unit, study_dir, text):
    """An OOD unit stores, beside its AUROC matrices, the norm ratio and the score distributions (equal
    to those of the score arrays it wrote), and the report shows them with the unit's AUROC heatmaps."""
    detectors = [
        name[len("AUROC (") : -1] for name in unit.metrics["matrices"] if name.startswith("AUROC (")
    ]  # in the unit's order
    assert sorted(detectors) == ["energy", "knn", "mahalanobis"]
    ratio = unit.metrics["matrices"][NORM_RATIO_MATRIX]
    assert ratio["kind"] == "ratio" and (ratio["rows"], ratio["cols"]) == (
        ["layer1.0", "layer4.1"],
        ["layer1.0", "layer4.1"],
    )
    assert (
        all(v > 0 for row in ratio["values"] for v in row) and list(unit.metrics["matrices"])[-1] == NORM_RATIO_MATRIX
    )
    rows = unit.metrics["tables"][SCORE_TABLE]
    genuine = {(r["end_layer"], r["detector"]): r for r in rows if r["activations"] == "genuine"}
    stitched = {(r["front_layer"], r["end_layer"], r["detector"]): r for r in rows if r["activations"] == "stitched"}
    assert set(genuine) == {(e, d) for e in ratio["cols"] for d in detectors} and len(rows) == len(genuine) + len(
        stitched
    )
    assert set(stitched) == {(f, e, d) for f in ratio["rows"] for e in ratio["cols"] for d in detectors}
    out = study_dir / "units" / f"ood-{unit.id}"
    runs = json.loads((out / "ood_matrices.json").read_text())["runs"]
    for (end, name), row in genuine.items():
        _same_quantiles(row, np.load(out / "energies" / "id" / end / f"{name}.npy"))
    for run_name, record in runs.items():
        for name in detectors:
            row = stitched[(record["front_layer"], record["end_layer"], name)]
            _same_quantiles(row, np.load(out / "energies" / "runs" / run_name / f"{name}.npy"))
            assert (
                row["auroc"]
                == unit.metrics["matrices"][f"AUROC ({name})"]["values"][ratio["rows"].index(record["front_layer"])][
                    ratio["cols"].index(record["end_layer"])
                ]
            )
    # the report: the norm-ratio heatmap right after the AUROC heatmaps, then one score figure per detector, then the
    # unit's tables
    section = text[text.index(f"<h3>{unit.label}</h3>") :]
    section = section[: section.index("<h3>", 4)] if "<h3>" in section[4:] else section
    order = [
        f'id="{artifact_stem("ood", unit.label, name)}"'
        for name in [f"AUROC ({d})" for d in detectors]
        + [NORM_RATIO_MATRIX]
        + [f"score distributions ({d})" for d in detectors]
        + [SCORE_TABLE]
    ]
    positions = [section.index(anchor) for anchor in order]
    assert positions == sorted(positions)
    assert (
        "higher = more OOD" in section
        and "AUROC = P(stitched score &gt; genuine score)" in section
        and "more typical than the genuine" in section
    )
    assert html.escape(NORM_RATIO_CAPTION) in section  # how to read the norm-ratio heatmap
    for d in detectors:
        assert (
            study_dir / "report" / "figures" / f"{artifact_stem('ood', unit.label, f'score distributions ({d})')}.png"
        ).is_file()


def _same_quantiles(row, values):
    v = np.asarray(values, dtype=np.float64)
    assert row["n"] == v.size and (row["min"], row["max"]) == (v.min(), v.max())
    assert [row["q25"], row["q50"], row["q75"]] == pytest.approx(np.quantile(v, [0.25, 0.5, 0.75]).tolist(), rel=1e-12)


@pytest.mark.parametrize("name", ["demo.toml", "paper_cifar10_resnet18.toml", "paper_cifar10_vit_tiny.toml"])
def test_example_configs_validate_and_plan(name, tmp_path):
    status = study_status(Path(__file__).parent.parent / "examples" / name, tmp_path / "s")
    kinds = status["by_kind"]
    networks = ("network", 2) if name == "demo.toml" else ("train", 3)  # the demo stitches shipped checkpoints
    assert kinds[networks[0]]["pending"] == networks[1] and {
        "stitch",
        "detectors",
        "ood",
        "similarity",
        "probes",
        "sensitivity",
        "specificity",
    } <= set(kinds)


@pytest.mark.parametrize("self_pairs, n_detectors, n_ood", [(True, 2, 2), (False, 1, 1)])
def test_ood_self_pairs_decides_whether_self_stitches_are_tested(self_pairs, n_detectors, n_ood, tmp_path):
    from stitchkit.study.config import validate
    from stitchkit.study.plan import plan_study

    config = validate(
        {
            "networks": {"seeds": [0, 1]},
            "stitching": {"pairs": "first_and_self", "methods": ["dm"]},
            "ood": {"self_pairs": self_pairs},
        }
    )
    units = plan_study(config, tmp_path)
    stitches = {u.id: u for u in units if u.kind == "stitch"}
    assert len(stitches) == 2  # 0 → 0 and 0 → 1, whatever the OOD test looks at
    ood = [u for u in units if u.kind == "ood"]
    assert len([u for u in units if u.kind == "detectors"]) == n_detectors and len(ood) == n_ood
    if not self_pairs:
        tested = stitches[ood[0].deps[0]]
        assert tested.deps[0] != tested.deps[1]


def test_toml_value_round_trips_through_the_toml_parser():
    import tomllib

    from stitchkit.study.config import toml_value

    value = {
        "width": 4,
        "name": 'a "quoted" name',
        "ranks": [4, 2, 1],
        "flags": {"on": True, "off": False},
        "lr": 1e-3,
        "layers": ["layer1.1"],
    }
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value
