"""Every library report returns the shared result records (stitchkit.results Matrix and Table), with
the same numbers it holds, and writes its files through the shared writers with the formats unchanged."""

import csv
import math

import numpy as np
import pytest
from stitch_support import trained_resnet

import stitchkit
from stitchkit.errors import StitchkitError
from stitchkit.ood.matrices import METRIC_KINDS
from stitchkit.probing.probe import ProbeReport, ProbeResult
from stitchkit.results import Matrix, Table
from stitchkit.results.plot import KIND_CMAPS
from stitchkit.stitching.collect import collect_results, write_collected

QUICK = dict(device="cpu", workers=0)


def _probe(layer, rank, acc):
    return ProbeResult(layer, rank, acc, 1.0 - acc, acc + 0.01, 0.5, 16, (16, 4, 4))


def test_probe_report_matrix_table_and_csv(tmp_path):
    report = ProbeReport(
        [_probe("a", None, 0.9), _probe("a", 2, 0.5), _probe("b", None, 0.75)],
        config={"epochs": 1},
        info={"model_fingerprint": "abc", "layers": ["a", "b"], "ranks": [None, 2]},
    )
    m = report.matrix()
    assert (m.rows, m.cols, m.row_label, m.col_label, m.kind) == (
        ["a", "b"],
        ["full", "2"],
        "layer",
        "rank",
        "accuracy",
    )
    assert (
        m["a", "full"] == 0.9 and m["a", "2"] == 0.5 and m["b", "full"] == 0.75 and math.isnan(m["b", "2"])
    )  # b was not probed at rank 2
    assert m.provenance.models == {"model": "abc"} and m.provenance.options["config"] == {"epochs": 1}
    assert report.matrix("train_loss").kind == "distance"
    with pytest.raises(StitchkitError, match="not 'accuracy'"):
        report.matrix("accuracy")
    table = report.table()
    assert (
        isinstance(table, Table)
        and len(table) == 3
        and table.column("val_acc") == [0.9, 0.5, 0.75]
        and table.column("rank_used") == [None, 2, None]
    )
    paths = report.write(tmp_path / "out")
    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(ProbeReport.CSV_COLUMNS) and rows[1] == {
        "layer": "a",
        "rank": "2",
        "val_acc": "0.500000",
        "val_loss": "0.500000",
        "train_acc": "0.510000",
        "train_loss": "0.500000",
        "in_features": "16",
        "activation_shape": "16x4x4",
        "rank_used": "2",
    }
    assert paths["csv"].read_text() == report.to_csv()


@pytest.fixture(scope="module")
def donors():
    return trained_resnet(0), trained_resnet(1)


def test_collected_matrices_equal_the_grid_just_stitched(donors, tmp_path):
    front, end = donors
    grid = stitchkit.direct_match(
        front,
        end,
        ["layer1.0", "layer3.0"],
        ["layer2.0", "layer3.0"],
        "digits",
        save_dir=tmp_path / "runs",
        fit_samples=50,
        test_samples=64,
        **QUICK,
    )
    [group] = collect_results(tmp_path / "runs")
    for metric in ("accuracy", "residual", "fit_residual"):
        collected = group.matrix(metric)
        assert isinstance(collected, Matrix) and (collected.rows, collected.cols) == (
            grid.front_layers,
            grid.end_layers,
        )
        np.testing.assert_array_equal(
            collected.to_numpy(), grid.matrix(metric).to_numpy()
        )  # read back from disk, exactly
        assert collected.kind == grid.matrix(metric).kind
    assert group.matrix().provenance.models == {"front": grid.front.fingerprint, "end": grid.end.fingerprint}
    with pytest.raises(StitchkitError, match="unknown collected metric 'auroc'"):
        group.matrix("auroc")
    written = write_collected([group], tmp_path / "tables")
    accuracy_csv = next(p for p in written if p.name == "accuracy.csv")
    assert accuracy_csv.read_text() == group.csv("accuracy") and accuracy_csv.read_text().startswith(
        "front\\end,layer2.0,layer3.0\n"
    )
    with open(accuracy_csv, newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert [[float(v) for v in row[1:]] for row in rows] == group.metrics["accuracy"].tolist()


def test_similarity_report_matrix_and_files(donors, tmp_path):
    front, end = donors
    result = stitchkit.compare(front, end, "layer1.0,layer2.0", "digits", measures=["cka"], n_samples=64, device="cpu")
    report = result.report
    m = report.matrix("cka")
    for r in report.results:
        assert m[r.x.layer, r.y.layer] == r.value
    assert (
        m.provenance.models == {"a": result.model_a.fingerprint, "b": result.model_b.fingerprint}
        and m.provenance.options["n_samples"] == 64
    )
    with pytest.raises(StitchkitError, match="no cka values at ranks \\(4, None\\)"):
        report.matrix("cka", rank_x=4)
    paths = report.write(tmp_path / "sim")
    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(row["value"]) for row in rows] == pytest.approx([r.value for r in report.results], rel=1e-7)
    assert {row["rank_x"] for row in rows} == {"full"} and rows[0]["matrix_shape_x"] == "x".join(
        map(str, report.results[0].to_dict()["matrix_shape_x"])
    )
    assert Matrix.load(m.save(tmp_path / "cka.json")).to_dict() == m.to_dict()


def test_ood_matrices_convert_to_records(donors):
    front, end = donors
    grid = stitchkit.direct_match(
        front, end, "layer2.0", ["layer3.0", "layer4.0"], "digits", fit_samples=50, test_samples=64, **QUICK
    )
    ood = stitchkit.ood_test(grid, detectors=["mahalanobis"], detector_fit_samples=100, test_samples=64)
    raw = ood.ood
    for metric in ("accuracy", "auroc", "aupr", "fpr95", "norm_ratio", "median_score"):
        record = raw.to_matrix(metric, "mahalanobis")
        np.testing.assert_array_equal(record.to_numpy(), np.array(raw.matrix(metric, "mahalanobis")))
        assert (record.rows, record.cols) == (["layer2.0"], ["layer3.0", "layer4.0"])
    assert raw.to_matrix("fpr95").kind == "similarity" and raw.to_matrix("auroc").kind == "distance"
    assert (
        raw.to_matrix("norm_ratio").kind == "ratio"
        and raw.to_matrix("norm_ratio").name == "norm ratio (stitched / genuine)"
    )
    # the norm ratio compares the genuine activations of the ID test set the AUROC's ID side scored
    for (_front, end), r in raw.results.items():
        assert (
            r.norm_ratio == pytest.approx(r.stitched_norm.mean / np.mean(ood.id_norms[end]), rel=1e-6)
            and r.genuine_norm.n == 64
        )
    assert list(ood.matrices) == ["accuracy", "auroc (mahalanobis)", "norm ratio"]
    # the API's AUROC heatmap has the colours of the study report's (KIND_CMAPS by the kind METRIC_KINDS declares)
    assert ood.plot("auroc", "mahalanobis").axes[0].images[0].get_cmap().name == KIND_CMAPS[METRIC_KINDS["auroc"][0]]
    scores = ood.score_table()
    assert len(scores) == 2 * (1 + 1) and scores.column("activations") == ["genuine", "stitched"] * 2
    assert ood.table().column("norm_ratio") == [
        raw.results[("layer2.0", e)].norm_ratio for e in ("layer3.0", "layer4.0")
    ]
    fig = ood.plot_scores()
    assert [ax.get_title() for ax in fig.axes] == ["end: layer3.0", "end: layer4.0"] and "AUROC" in fig.get_suptitle()
    assert "metrics (mahalanobis)" in raw.to_matrix("auroc").provenance.conventions
    assert ood.matrix("auroc").provenance.models == {"front": grid.front.fingerprint, "end": grid.end.fingerprint}
    with pytest.raises(StitchkitError, match="unknown detector of this test 'knn'"):
        raw.to_matrix("auroc", "knn")
