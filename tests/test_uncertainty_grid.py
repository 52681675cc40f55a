"""Per-image statistics of stitch grids and their bootstrap intervals (issue 19, items 1 and 4 for
stitching): the residual's per-image sums against a closed form, the grouped and the per-pair paths
keep the same arrays, the records' numbers are the arrays' means and ratios exactly, the intervals
equal an independent resampling by indices, and the bootstrap never renames or re-runs a pair."""

import json

import numpy as np
import pytest
import torch
from stitch_support import QUICK, trained_resnet

from stitchkit.errors import StitchkitError
from stitchkit.stitching import StitchSettings, stitch_grid
from stitchkit.stitching.direct_match import ResidualMeter
from stitchkit.stitching.intervals import attach_intervals, bootstrap_spec
from stitchkit.stitching.per_sample import PER_SAMPLE_FILE, PairSamples, grid_arrays, read_npz
from stitchkit.stitching.records import RESULT_FILE, StitchResult
from stitchkit.uncertainty.bootstrap import BootstrapSpec, percentile_interval, resample_counts

FRONTS, ENDS = ["layer1.1", "layer3.1"], ["layer2.0", "layer4.0"]


def _settings(**kw):
    return StitchSettings(**{**QUICK, "epochs": 0, "init": "pinv", "test_samples": 90, "batch_size": 32, **kw})


@pytest.fixture(scope="module")
def donors():
    return trained_resnet(0), trained_resnet(1)


@pytest.fixture(scope="module")
def grouped(donors, tmp_path_factory):
    root = tmp_path_factory.mktemp("grouped")
    return root, stitch_grid(*donors, FRONTS, ENDS, _settings(), save_dir=root)


def test_the_residual_meter_keeps_each_images_sums_and_pools_them_exactly():
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(b, 3, 4, 5, generator=gen), torch.randn(b, 3, 4, 5, generator=gen)) for b in (7, 5, 9)]
    meter = ResidualMeter()
    for pred, target in batches:
        meter.record(pred, target)
    num, den = meter.per_sample()
    pred = np.concatenate([p.double().numpy() for p, _ in batches])
    target = np.concatenate([t.double().numpy() for _, t in batches])
    np.testing.assert_allclose(num, ((pred - target) ** 2).sum(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(den, (target**2).sum(axis=(1, 2, 3)), rtol=1e-6)
    assert meter.pooled == num.sum() / den.sum()  # exactly: the pooled value is made from them
    ratios = [((p - t).double() ** 2).sum() / (t.double() ** 2).sum() for p, t in batches]
    assert meter.batch_mean == pytest.approx(float(np.mean(ratios)), rel=1e-6)


def test_the_records_numbers_are_their_per_image_statistics(grouped):
    _, results = grouped
    for r in results:
        s = r.samples
        assert s.n == r.n_test == 90 and s.hits.dtype == np.uint8 and s.residual_num.dtype == np.float64
        assert r.accuracy == s.hits.mean()
        assert r.residual == s.residual_num.sum() / s.residual_den.sum()
        assert r.end_accuracy == s.end_hits.mean() and r.front_accuracy == s.front_hits.mean()
        np.testing.assert_array_equal(s.images, np.arange(90))
        # the fit residual from the least-squares statistics, and from each fit image's terms with the map held fixed
        assert s.fit_num.size == s.fit_den.size == r.n_fit and r.fit_residual == pytest.approx(
            s.fit_num.sum() / s.fit_den.sum(), rel=1e-6
        )


def test_the_per_pair_path_keeps_the_same_arrays_as_the_grouped_one(donors, grouped):
    _, fast = grouped
    reference = stitch_grid(*donors, FRONTS, ENDS, _settings(grouping="per-pair"))
    for a, b in zip(fast, reference):
        assert (a.front_layer, a.end_layer) == (b.front_layer, b.end_layer)
        for name in ("hits", "end_hits", "front_hits", "images"):
            np.testing.assert_array_equal(getattr(a.samples, name), getattr(b.samples, name))
        np.testing.assert_allclose(a.samples.residual_num, b.samples.residual_num, rtol=1e-5)
        np.testing.assert_allclose(a.samples.residual_den, b.samples.residual_den, rtol=1e-5)
        np.testing.assert_allclose(a.samples.fit_num, b.samples.fit_num, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(a.samples.fit_den, b.samples.fit_den, rtol=1e-5)


def test_run_folders_keep_the_statistics_beside_the_result(grouped):
    root, results = grouped
    for r in results:
        folder = root / r.run_name
        assert (folder / PER_SAMPLE_FILE).is_file()
        assert "samples" not in json.loads((folder / RESULT_FILE).read_text())
        stored = StitchResult.load(folder).samples
        for name, values in r.samples.to_arrays().items():
            np.testing.assert_array_equal(getattr(stored, name), values)


def test_grid_arrays_stack_the_cells_in_the_contract_layout(grouped):
    _, results = grouped
    arrays = grid_arrays({(r.front_layer, r.end_layer): r.samples for r in results}, FRONTS, ENDS)
    assert arrays["hits"].shape == (2, 2, 90) and arrays["hits"].dtype == np.uint8
    accuracy = np.array([[r.accuracy for r in results[:2]], [r.accuracy for r in results[2:]]])
    residual = np.array([[r.residual for r in results[:2]], [r.residual for r in results[2:]]])
    assert np.array_equal(arrays["hits"].mean(-1), accuracy)
    assert np.array_equal(arrays["residual_num"].sum(-1) / arrays["residual_den"].sum(-1), residual)
    assert list(arrays["front_layers"]) == FRONTS and list(arrays["end_layers"]) == ENDS
    fit = np.array([[r.fit_residual for r in results[:2]], [r.fit_residual for r in results[2:]]])
    np.testing.assert_allclose(arrays["fit_num"].sum(-1) / arrays["fit_den"].sum(-1), fit, rtol=1e-6)
    with pytest.raises(StitchkitError, match="no per-sample statistics"):
        grid_arrays({}, FRONTS, ENDS)


def _loop_interval(statistic, counts, level):
    """An independent bootstrap: each resample's images by index, one resample at a time."""
    stats = []
    for row in counts:
        idx = np.repeat(np.arange(len(row)), row)
        stats.append(statistic(idx))
    return percentile_interval(np.array(stats), level)


def test_intervals_equal_resampling_by_indices(grouped):
    _, results = grouped
    spec = BootstrapSpec(resamples=150, level=0.9, seed=3)
    attach_intervals(results, spec)
    counts = resample_counts(90, 150, 3)
    for r in results:
        s = r.samples
        acc = _loop_interval(lambda i: s.hits[i].mean(), counts, 0.9)
        res = _loop_interval(lambda i: s.residual_num[i].sum() / s.residual_den[i].sum(), counts, 0.9)
        rel = _loop_interval(lambda i: s.hits[i].mean() / s.end_hits[i].mean(), counts, 0.9)
        np.testing.assert_allclose(r.accuracy_ci, acc, rtol=1e-12)
        np.testing.assert_allclose(r.residual_ci, res, rtol=1e-10)
        np.testing.assert_allclose(r.relative_accuracy_ci, rel, rtol=1e-10)
        assert r.accuracy_ci[0] <= r.accuracy <= r.accuracy_ci[1]
        assert r.interval == {**spec.record(), "n": 90}
    attach_intervals(results, BootstrapSpec(resamples=0))
    assert all(r.accuracy_ci is None and r.interval is None for r in results)


def test_the_bootstrap_names_no_run_and_reruns_nothing(donors, grouped):
    root, results = grouped
    again = stitch_grid(*donors, FRONTS, ENDS, _settings(bootstrap=120, bootstrap_seed=5), save_dir=root)
    assert all(r.skipped for r in again)
    assert [r.run_name for r in again] == [r.run_name for r in results]
    assert [r.config_key for r in again] == [r.config_key for r in results]
    spec = bootstrap_spec(_settings(bootstrap=120, bootstrap_seed=5))
    fresh = [StitchResult.load(root / r.run_name) for r in results]
    attach_intervals(fresh, spec)
    assert [r.accuracy_ci for r in again] == [r.accuracy_ci for r in fresh]
    assert all(r.interval["resamples"] == 120 and r.interval["seed"] == 5 for r in again)


def test_bootstrap_settings_are_checked():
    with pytest.raises(StitchkitError, match="--bootstrap"):
        _settings(bootstrap=-1).validate()
    with pytest.raises(StitchkitError, match="confidence level"):
        _settings(bootstrap=10, bootstrap_level=1.5).validate()


def test_pair_samples_refuse_mismatched_lengths(tmp_path):
    with pytest.raises(StitchkitError, match="same 3 images"):
        PairSamples(np.ones(3), np.ones(3), np.ones(2), None, None, np.arange(3))
    s = PairSamples(np.ones(3), np.ones(3), np.ones(3), np.zeros(3), None, np.arange(3))
    s.save(tmp_path / "x.npz")
    assert set(read_npz(tmp_path / "x.npz")) == {"hits", "residual_num", "residual_den", "images", "end_hits"}
    with pytest.raises(StitchkitError, match="both numerators and denominators"):
        PairSamples(np.ones(3), np.ones(3), np.ones(3), None, None, np.arange(3), fit_num=np.ones(5))
    with pytest.raises(StitchkitError, match="two vectors of one length"):
        PairSamples(
            np.ones(3), np.ones(3), np.ones(3), None, None, np.arange(3), fit_num=np.ones(5), fit_den=np.ones(4)
        )
    kept = PairSamples(
        np.ones(3), np.ones(3), np.ones(3), None, None, np.arange(3), fit_num=np.ones(5), fit_den=np.full(5, 2.0)
    )
    kept.save(tmp_path / "y.npz")
    assert PairSamples.load(tmp_path / "y.npz").fit_den.tolist() == [2.0] * 5


def test_the_donors_hits_come_from_the_activation_cache_when_their_pass_is_skipped(donors, grouped, tmp_path):
    _, results = grouped
    settings = _settings(activation_cache=str(tmp_path / "cache"))
    first = stitch_grid(*donors, ["layer1.1"], ["layer2.0"], settings)[0]
    second = stitch_grid(*donors, ["layer3.1"], ["layer4.0"], settings)[0]  # donors' accuracies read from the cache
    for r in (first, second):
        np.testing.assert_array_equal(r.samples.end_hits, results[0].samples.end_hits)
        np.testing.assert_array_equal(r.samples.front_hits, results[0].samples.front_hits)
    np.testing.assert_array_equal(second.samples.hits, results[3].samples.hits)


def test_the_study_stitch_unit_writes_the_grids_per_sample_statistics(donors, tmp_path):
    from stitchkit.models.checkpoint import save_checkpoint
    from stitchkit.study.unit_kinds.stitch import run_stitch
    from stitchkit.study.units import Unit, UnitContext

    deps = {}
    for name, model in zip(("front", "end"), donors):
        path = tmp_path / name / "final.pt"
        save_checkpoint(path, model, dataset="digits", input_shape=(1, 28, 28))
        deps[name] = {"kind": "network", "params": {}, "metrics": {}, "artifacts": {"checkpoint": str(path)}}
    params = {
        "dataset": "digits",
        "seed": 0,
        "method": "dm",
        "front_layers": FRONTS,
        "end_layers": ENDS,
        "type": "auto",
        "fit_samples": 100,
        "eval_samples": 90,
    }
    out = tmp_path / "unit"
    out.mkdir()
    ctx = UnitContext(tmp_path, out, deps, {"device": "cpu", "workers": 0})
    result = run_stitch(Unit("stitch", params, ("front", "end")), ctx)
    arrays = read_npz(result["artifacts"]["per_sample"])
    assert result["artifacts"]["per_sample"] == out / PER_SAMPLE_FILE
    assert (
        arrays["hits"].shape == (2, 2, 90)
        and list(arrays["front_layers"]) == FRONTS
        and list(arrays["end_layers"]) == ENDS
    )
    matrices = result["metrics"]["matrices"]
    assert np.array_equal(np.array(matrices["DM accuracy"]["values"]), arrays["hits"].mean(-1))
    residual = np.array(matrices["DM residual (test, pooled)"]["values"])
    assert np.array_equal(residual, arrays["residual_num"].sum(-1) / arrays["residual_den"].sum(-1))
    assert result["metrics"]["end_accuracy"] == arrays["end_hits"].mean()
    assert result["metrics"]["front_accuracy"] == arrays["front_hits"].mean()


def test_the_api_grid_carries_bounds_and_computes_them_on_request(donors):
    import stitchkit

    plain = stitchkit.stitch_grid(*donors, FRONTS, ENDS, "digits", test_samples=90, batch_size=32)
    assert not plain.matrix("accuracy").has_interval
    sure = stitchkit.stitch_grid(
        *donors, FRONTS, ENDS, "digits", test_samples=90, batch_size=32, bootstrap=200, bootstrap_seed=4
    )
    for metric in ("accuracy", "residual", "relative_accuracy"):
        stored, asked = sure.matrix(metric), plain.ci(metric, resamples=200, seed=4)
        assert stored.has_interval and stored.interval["resamples"] == 200
        np.testing.assert_array_equal(stored.to_numpy(), asked.to_numpy())
        np.testing.assert_allclose(stored.ci()[0], asked.ci()[0], rtol=1e-12)
        np.testing.assert_allclose(stored.ci()[1], asked.ci()[1], rtol=1e-12)
        lower, upper = stored.ci()
        assert np.all(lower <= stored.to_numpy() + 1e-12) and np.all(stored.to_numpy() <= upper + 1e-12)
    rel = sure.matrix("relative_accuracy")
    r = sure.pair(FRONTS[0], ENDS[1])
    assert rel[FRONTS[0], ENDS[1]] == r.accuracy / r.end_accuracy and rel.ci(FRONTS[0], ENDS[1]) == tuple(
        r.relative_accuracy_ci
    )
    assert sure.matrices["accuracy"].has_interval
    # the per-pair table: each metric's bounds right after it (relative accuracy's at the end), none without a bootstrap
    table = sure.table()
    at = table.columns.index("accuracy")
    assert table.columns[at + 1 : at + 3] == ["accuracy (lower)", "accuracy (upper)"] and table.columns[-2:] == [
        "relative_accuracy (lower)",
        "relative_accuracy (upper)",
    ]
    row = next(row for row in table.rows if (row["front_layer"], row["end_layer"]) == (FRONTS[0], ENDS[1]))
    assert [row["residual (lower)"], row["residual (upper)"]] == r.residual_ci
    assert not any("(lower)" in c for c in plain.table().columns)
    assert plain.ci("accuracy", level=0.5).interval["level"] == 0.5
    with pytest.raises(StitchkitError, match="metric with an interval"):
        plain.ci("fit_residual")


def test_the_cli_prints_intervals_and_collect_writes_bounds(donors, tmp_path, capsys):
    from stitchkit.cli import main
    from stitchkit.models.checkpoint import save_checkpoint

    paths = []
    for name, model in zip(("a", "b"), donors):
        paths.append(tmp_path / f"{name}.pt")
        save_checkpoint(paths[-1], model, dataset="digits", input_shape=(1, 28, 28))
    base = [
        "stitch",
        *map(str, paths),
        "-",
        "-",
        "layer3.1",
        "layer4.0",
        "auto",
        "-e",
        "0",
        "-i",
        "pinv",
        "--test-samples",
        "90",
        "-b",
        "32",
        "--results-root",
        str(tmp_path / "results"),
        "-dir",
        "dm",
        "-gpu",
        "-1",
        "-workers",
        "0",
        "--no-progress",
        "--no-activation-cache",
    ]
    assert main(base) == 0
    assert "CI" not in capsys.readouterr().out
    assert main(base + ["--bootstrap", "200", "--level", "0.9"]) == 0  # the stored run, not run again
    out = capsys.readouterr().out
    assert "stored result" in out and "(90% CI " in out
    assert (
        main(
            ["collect", str(tmp_path / "results" / "dm"), "--bootstrap", "200", "--level", "0.9", "--print", "accuracy"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "lower bound of the 90% interval" in out
    group = json.loads((tmp_path / "results" / "dm" / "matrices.json").read_text())["groups"][0]
    run = StitchResult.load(next(p for p in (tmp_path / "results" / "dm").iterdir() if p.is_dir()))
    attach_intervals([run], BootstrapSpec(200, 0.9, 0))
    assert group["bounds"]["accuracy"]["lower"][0][0] == run.accuracy_ci[0]
    assert group["bounds"]["residual"]["upper"][0][0] == run.residual_ci[1]
    assert group["interval"]["resamples"] == 200 and group["interval"]["n"] == 90
    assert (tmp_path / "results" / "dm" / "accuracy.lower.csv").is_file()


def test_a_trained_stitchs_fit_residual_is_its_fit_images_terms(donors):
    """Task loss matching: the statistics and the per-image terms come from one pass over the fit images."""
    (result,) = stitch_grid(
        *donors, ["layer3.1"], ["layer4.0"], _settings(init="rand", epochs=1, train_samples=64, fit_samples=48)
    )
    s = result.samples
    assert s.fit_num.size == 48 and (s.fit_num >= 0).all() and (s.fit_den > 0).all()
    assert result.fit_residual == pytest.approx(s.fit_num.sum() / s.fit_den.sum(), rel=1e-6)
