"""How sure the OOD test's and the probes' numbers are (issue 19): the per-image statistics they keep
(detector scores and activation norms, genuine and stitched; each probe's hits), the study artifacts
that hold them, and the bootstrap intervals made from them, each against an independent computation
(resample by resample with ``np.repeat``), a closed form, or the metrics recomputed from the stored arrays."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.ood.metrics import ood_metrics
from stitchkit.ood.per_sample import as_bootstrap, score_arrays
from stitchkit.probing import ProbeConfig, probe_activations
from stitchkit.results import Matrix
from stitchkit.study.ood_records import NORM_RATIO_MATRIX
from stitchkit.uncertainty.bootstrap import BootstrapSpec, resample_counts
from stitchkit.uncertainty.stitch_scores import interval_grids
from stitchkit.utils.io import write_npz_atomic

FRONTS, ENDS = ["f1", "f2"], ["e1", "e2"]


def synthetic_arrays(n_genuine=60, n_stitched=60, seed=0) -> dict:
    """Per-image arrays in the scores artifact's layout: Gaussian scores shifted by cell, positive norms."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for j, end in enumerate(ENDS):
        arrays[f"genuine|{end}|d"] = rng.normal(size=n_genuine)
        arrays[f"norm_genuine|{end}"] = rng.uniform(1, 2, size=n_genuine)
        for i, front in enumerate(FRONTS):
            arrays[f"stitched|{front}|{end}|d"] = rng.normal(0.3 * (i + j), size=n_stitched)
            arrays[f"norm_stitched|{front}|{end}"] = rng.uniform(1, 2 + i, size=n_stitched)
    return arrays


def by_hand(genuine, stitched, norm_g, norm_s, counts_g, counts_s, level):
    """Each resample's metrics from the resampled arrays themselves, then numpy's quantiles."""
    samples = {"auroc": [], "aupr": [], "fpr95": [], "norm_ratio": []}
    for cg, cs in zip(counts_g, counts_s):
        g, s = np.repeat(genuine, cg), np.repeat(stitched, cs)
        labels = np.r_[np.zeros(g.size), np.ones(s.size)]  # stitched = OOD
        samples["auroc"].append(roc_auc_score(labels, np.r_[g, s]))
        samples["aupr"].append(
            average_precision_score(1 - labels, -np.r_[g, s])
        )  # AUPR-In: ID positive, scored by −score
        samples["fpr95"].append(ood_metrics(g, s).fpr95)
        samples["norm_ratio"].append(np.repeat(norm_s, cs).mean() / np.repeat(norm_g, cg).mean())
    q = [(1 - level) / 2, (1 + level) / 2]
    return {k: np.quantile(np.asarray(v), q) for k, v in samples.items()}


@pytest.mark.parametrize("paired", [True, False])
def test_intervals_resample_the_test_images_as_by_hand(paired):
    n_genuine = 60 if paired else 45
    arrays = synthetic_arrays(n_genuine=n_genuine)
    spec = BootstrapSpec(resamples=40, level=0.9, seed=3)
    grids = interval_grids(arrays, FRONTS, ENDS, spec, paired=paired)
    assert set(grids) == {"auroc|d", "aupr|d", "fpr95|d", "norm_ratio"}
    counts_s = resample_counts(60, 40, 3)  # the stitched images: the resamples every unit on them shares
    counts_g = counts_s if paired else resample_counts(n_genuine, 40, 4)  # unpaired: the genuine side draws on its own
    for i, front in enumerate(FRONTS):
        for j, end in enumerate(ENDS):
            expected = by_hand(
                arrays[f"genuine|{end}|d"],
                arrays[f"stitched|{front}|{end}|d"],
                arrays[f"norm_genuine|{end}"],
                arrays[f"norm_stitched|{front}|{end}"],
                counts_g,
                counts_s,
                0.9,
            )
            for metric, (lo, hi) in expected.items():
                lower, upper = grids[metric if metric == "norm_ratio" else f"{metric}|d"]
                assert (lower[i, j], upper[i, j]) == pytest.approx((lo, hi), abs=1e-12), (metric, front, end)


def test_closed_forms_identical_scores_and_scaled_norms():
    """Stitched scores equal to the genuine ones on the same images: AUROC is ½ in every resample;
    stitched norms twice the genuine ones: the ratio of means is 2 in every resample."""
    arrays = synthetic_arrays()
    for front in FRONTS:
        for end in ENDS:
            arrays[f"stitched|{front}|{end}|d"] = arrays[f"genuine|{end}|d"].copy()
            arrays[f"norm_stitched|{front}|{end}"] = 2 * arrays[f"norm_genuine|{end}"]
    grids = interval_grids(arrays, FRONTS, ENDS, BootstrapSpec(resamples=30, seed=1))
    for bound in grids["auroc|d"]:
        np.testing.assert_allclose(bound, 0.5, atol=1e-12)
    for bound in grids["norm_ratio"]:
        np.testing.assert_allclose(bound, 2.0, rtol=1e-12)


def test_missing_cells_are_nan_and_mistakes_are_refused():
    arrays = {k: v for k, v in synthetic_arrays().items() if "f2|e1" not in k}
    grids = interval_grids(arrays, FRONTS, ENDS, BootstrapSpec(resamples=10))
    assert (
        np.isnan(grids["auroc|d"][0][1, 0])
        and np.isnan(grids["norm_ratio"][1][1, 0])
        and not np.isnan(grids["auroc|d"][0][0, 0])
    )
    with pytest.raises(StitchkitError, match="same test images"):
        interval_grids(synthetic_arrays(n_genuine=50), FRONTS, ENDS, BootstrapSpec(resamples=10), paired=True)
    for bad in (-1, True, 2.5):
        with pytest.raises(StitchkitError, match="bootstrap resamples"):
            as_bootstrap(bad)
    assert not as_bootstrap(0).enabled and as_bootstrap(7).resamples == 7 and not as_bootstrap(None).enabled


def test_score_arrays_name_every_image_statistic_and_round_trip(tmp_path):
    results = {
        ("f1", "e1"): SimpleNamespace(ood_scores={"d": np.float32([1, 2])}, norms=np.float32([3, 4])),
        ("f2", "e1"): SimpleNamespace(ood_scores={"d": np.float32([5, 6])}, norms=None),
    }
    arrays = score_arrays(results, {"e1": {"d": [0.5, 0.25]}}, {"e1": [1.0, 1.5]})
    assert sorted(arrays) == [
        "genuine|e1|d",
        "norm_genuine|e1",
        "norm_stitched|f1|e1",
        "stitched|f1|e1|d",
        "stitched|f2|e1|d",
    ]
    assert all(a.dtype == np.float64 for a in arrays.values())
    write_npz_atomic(tmp_path / "scores.npz", arrays)
    with np.load(tmp_path / "scores.npz") as stored:
        assert sorted(stored.files) == sorted(arrays) and all(np.array_equal(stored[k], arrays[k]) for k in arrays)
    assert [p.name for p in tmp_path.iterdir()] == ["scores.npz"]  # no temporary file left


# -- probes --------------------------------------------------------------------------------------------


def noisy_set(n, generator):
    y = torch.randint(0, 4, (n,), generator=generator)
    return torch.eye(8)[:4][y] + 0.6 * torch.randn(n, 8, generator=generator), y


@pytest.fixture(scope="module")
def probe_data():
    g = torch.Generator().manual_seed(0)
    return (*noisy_set(256, g), *noisy_set(120, g))


def test_probe_hits_are_the_test_accuracy_image_by_image(probe_data):
    xtr, ytr, xte, yte = probe_data
    config = dict(epochs=2, lr=0.05, batch_size=32)
    report = probe_activations({"a": xtr}, ytr, {"a": xte}, yte, ranks=[None, 2], config=ProbeConfig(**config))
    for r in report.results:
        assert r.test_hits.dtype == np.uint8 and r.test_hits.shape == (120,)
        assert r.test_hits.mean() == pytest.approx(r.val_acc, abs=1e-12)
    # the test pass of every epoch (track_val) ends with the same hits as the one final pass
    tracked = probe_activations(
        {"a": xtr}, ytr, {"a": xte}, yte, ranks=[None, 2], config=ProbeConfig(track_val=True, **config)
    )
    for a, b in zip(report.results, tracked.results):
        np.testing.assert_array_equal(a.test_hits, b.test_hits)
    # hits belong to their images: shuffling the test set shuffles them alike (the probes train on the training set
    # only)
    order = torch.randperm(120, generator=torch.Generator().manual_seed(5))
    shuffled = probe_activations(
        {"a": xtr}, ytr, {"a": xte[order]}, yte[order], ranks=[None, 2], config=ProbeConfig(**config)
    )
    for a, b in zip(report.results, shuffled.results):
        np.testing.assert_array_equal(b.test_hits, a.test_hits[order.numpy()])
    per_sample = report.per_sample()
    assert sorted(per_sample) == ["hits|a|2", "hits|a|full", "images"]
    np.testing.assert_array_equal(per_sample["images"], np.arange(120))
    json.dumps(report.to_dict())  # the hits stay out of the JSON record
    assert "test_hits" not in report.table().rows[0]


def test_probe_accuracy_intervals_as_by_hand(probe_data):
    xtr, ytr, xte, yte = probe_data
    report = probe_activations(
        {"a": xtr, "b": 2 * xtr},
        ytr,
        {"a": xte, "b": 2 * xte},
        yte,
        ranks=[None, 2],
        config=ProbeConfig(epochs=2, lr=0.05, batch_size=32),
    )
    spec = BootstrapSpec(resamples=50, level=0.8, seed=2)
    found = report.accuracy_intervals(spec)
    counts = resample_counts(120, 50, 2)
    for r in report.results:
        accuracies = [np.repeat(r.test_hits, c).mean() for c in counts]
        assert found[(r.layer, r.rank)] == pytest.approx(tuple(np.quantile(accuracies, [0.1, 0.9])), abs=1e-12)
    matrix = report.matrix("val_acc", spec)
    assert matrix.has_interval and matrix.interval["resamples"] == 50 and matrix.ci("b", "2") == found[("b", 2)]
    assert not report.matrix("val_acc").has_interval and not report.matrix("train_acc", spec).has_interval


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4).eval()
    path = tmp_path_factory.mktemp("uncertainty") / "source.pt"
    save_checkpoint(path, model, dataset="digits", input_shape=(1, 28, 28))
    return path


def test_probe_command_prints_and_writes_the_intervals(tiny_checkpoint, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = main(
        [
            "probe",
            str(tiny_checkpoint),
            "-l",
            "layer3.1",
            "-ranks",
            "full",
            "4",
            "-e",
            "1",
            "-b",
            "128",
            "--no-augment",
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
            "-o",
            str(out_dir),
            "--bootstrap",
            "40",
            "--level",
            "0.9",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("layer3.1 "))
    value, lo, hi = (float(word.strip("[],")) for word in line.split()[1:4])  # rank full: value [lower, upper]
    assert lo <= float(value) <= hi and "90% percentile bootstrap intervals" in out
    matrix = Matrix.load(out_dir / "probe_accuracy.csv")
    assert matrix.ci("layer3.1", "full") == pytest.approx((lo, hi), abs=1e-4)
    code = main(
        [
            "probe",
            str(tiny_checkpoint),
            "-l",
            "layer3.1",
            "-e",
            "1",
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
            "--level",
            "1.5",
        ]
    )
    assert code == 2 and "--level must be a confidence level" in capsys.readouterr().err


def test_the_probes_unit_writes_each_probes_hits(tiny_checkpoint, tmp_path):
    from stitchkit.study.unit_kinds.probes import run_probes
    from stitchkit.study.units import Unit, UnitContext

    params = dict(dataset="digits", seed=0, layers=["layer2.1", "layer3.1"], ranks=[4], epochs=1, train_subset=300)
    unit = Unit("probes", params, deps=("net",))
    ctx = UnitContext(
        tmp_path,
        tmp_path / "out",
        {"net": {"artifacts": {"checkpoint": str(tiny_checkpoint)}, "label": "train s0"}},
        {"device": "cpu"},
    )
    (tmp_path / "out").mkdir()
    out = run_probes(unit, ctx)
    matrix = out["metrics"]["matrices"]["probe accuracy"]
    with np.load(out["artifacts"]["per_sample"]) as stored:
        assert sorted(stored.files) == [
            "hits|layer2.1|4",
            "hits|layer2.1|full",
            "hits|layer3.1|4",
            "hits|layer3.1|full",
            "images",
        ]
        for i, layer in enumerate(matrix["rows"]):
            for j, rank in enumerate(matrix["cols"]):
                hits = stored[f"hits|{layer}|{rank}"]
                assert hits.dtype == np.uint8 and hits.mean() == pytest.approx(matrix["values"][i][j], abs=1e-12)
        assert stored["images"].dtype == np.int64 and np.array_equal(
            stored["images"], np.arange(stored["hits|layer2.1|4"].size)
        )


# -- the OOD test --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stitch_folder(tiny_checkpoint):
    from stitchkit.stitching import StitchSettings, stitch_grid

    folder = tiny_checkpoint.parent / "stitches"
    settings = StitchSettings(
        init="pinv",
        epochs=0,
        fit_samples=50,
        test_samples=64,
        dataset="digits",
        device="cpu",
        workers=0,
        progress=False,
        verbose=False,
    )
    stitch_grid(
        str(tiny_checkpoint), str(tiny_checkpoint), ["layer3.1", "layer4.0"], ["layer4.0"], settings, save_dir=folder
    )
    return folder


def assert_metrics_from_the_arrays(arrays: dict, matrices: dict, fronts, ends) -> None:
    """Each AUROC is ood_metrics of the stored genuine and stitched scores; each norm ratio their means' ratio."""
    for i, front in enumerate(fronts):
        for j, end in enumerate(ends):
            for detector in ("mahalanobis", "knn"):
                expected = ood_metrics(
                    arrays[f"genuine|{end}|{detector}"], arrays[f"stitched|{front}|{end}|{detector}"]
                ).auroc
                assert matrices[f"AUROC ({detector})"][i][j] == pytest.approx(expected, abs=1e-12)
            ratio = arrays[f"norm_stitched|{front}|{end}"].mean() / arrays[f"norm_genuine|{end}"].mean()
            assert matrices[NORM_RATIO_MATRIX][i][j] == pytest.approx(ratio, rel=1e-9)


def test_the_ood_test_of_a_folder_keeps_its_scores_and_gives_intervals(stitch_folder, tmp_path, capsys):
    from stitchkit.ood.stitched import ResultsOODSettings, evaluate_results_dir

    options = dict(
        training_free=["mahalanobis", "knn"],
        training_free_options={"knn": {"k": 5}},
        fit_samples=100,
        test_samples=64,
        device="cpu",
        batch_size=32,
    )
    spec = BootstrapSpec(resamples=30, level=0.9, seed=4)
    [exp] = evaluate_results_dir(
        stitch_folder, ResultsOODSettings(bootstrap=spec, **options), out_dir=tmp_path / "ood", log=lambda m: None
    )
    arrays = exp.score_arrays()
    m = exp.matrices
    assert exp.paired and arrays["genuine|layer4.0|knn"].shape == arrays["stitched|layer3.1|layer4.0|knn"].shape == (
        64,
    )
    assert_metrics_from_the_arrays(
        arrays,
        {
            "AUROC (mahalanobis)": m.matrix("auroc", "mahalanobis"),
            "AUROC (knn)": m.matrix("auroc", "knn"),
            NORM_RATIO_MATRIX: m.matrix("norm_ratio"),
        },
        m.front_layers,
        m.end_layers,
    )
    expected = interval_grids(arrays, m.front_layers, m.end_layers, spec)
    for metric in ("auroc", "aupr", "fpr95"):
        lower, upper = m.ci(metric, "knn")
        np.testing.assert_array_equal(lower, expected[f"{metric}|knn"][0])
        np.testing.assert_array_equal(upper, expected[f"{metric}|knn"][1])
    assert m.to_matrix("norm_ratio").has_interval and not m.to_matrix("accuracy").has_interval
    with pytest.raises(StitchkitError, match="no confidence intervals"):
        m.ci("accuracy")
    data = json.loads((tmp_path / "ood" / "ood_matrices.json").read_text())
    assert (
        data["interval"] == {**spec.record(), "paired": True}
        and data["intervals"]["auroc|knn"]["lower"] == expected["auroc|knn"][0].tolist()
    )
    # without a bootstrap: the same matrices, no bounds
    knn_only = ResultsOODSettings(
        training_free=["knn"],
        training_free_options={"knn": {"k": 5}},
        fit_samples=100,
        test_samples=64,
        device="cpu",
        batch_size=32,
    )
    [plain] = evaluate_results_dir(stitch_folder, knn_only, out_dir=tmp_path / "plain", log=lambda m: None)
    assert plain.matrices.bounds == {} and "intervals" not in plain.matrices.to_dict()
    assert plain.matrices.matrix("auroc", "knn") == m.matrix("auroc", "knn")
    # the command prints each cell's interval
    code = main(
        [
            "ood",
            str(stitch_folder),
            "-detectors",
            "none",
            "--training-free",
            "knn",
            "--knn-k",
            "5",
            "--fit-samples",
            "100",
            "--test-samples",
            "64",
            "-gpu",
            "-1",
            "-b",
            "32",
            "-o",
            str(tmp_path / "cli"),
            "--bootstrap",
            "30",
            "--level",
            "0.9",
            "--bootstrap-seed",
            "4",
        ]
    )
    out = capsys.readouterr().out
    assert (
        code == 0
        and "STITCHING OOD Detection AUROC (knn) [90% interval]" in out
        and out.splitlines()[-1] == f"wrote {tmp_path / 'cli'}"
    )
    assert "AUPR" not in out.replace("AUPR, FPR95", "") and "intervals: " not in out  # the summary: accuracy and AUROC
    auroc_block = out.split("STITCHING OOD Detection AUROC (knn)")[1].splitlines()
    lo, hi = expected["auroc|knn"][0][0, 0], expected["auroc|knn"][1][0, 0]
    assert f"[{lo:.4f}, {hi:.4f}]" in auroc_block[2]


def test_the_ood_unit_writes_every_images_scores(stitch_folder, tmp_path):
    from stitchkit.study.unit_kinds.ood import run_ood
    from stitchkit.study.units import Unit, UnitContext

    params = dict(
        dataset="digits", seed=0, training_free=["mahalanobis", "knn"], sanity=None, eval_samples=64, energy=False
    )
    ctx = UnitContext(
        tmp_path, tmp_path / "out", {"stitch": {"artifacts": {"runs": str(stitch_folder)}}}, {"device": "cpu"}
    )
    (tmp_path / "out").mkdir()
    out = run_ood(Unit("ood", params, deps=("stitch",)), ctx)
    matrices = {name: m["values"] for name, m in out["metrics"]["matrices"].items()}
    some = out["metrics"]["matrices"]["AUROC (knn)"]
    with np.load(out["artifacts"]["scores"]) as stored:
        arrays = {k: stored[k] for k in stored.files}
    expected_keys = {f"genuine|layer4.0|{d}" for d in ("mahalanobis", "knn")} | {"norm_genuine|layer4.0"}
    expected_keys |= {f"stitched|{f}|layer4.0|{d}" for f in ("layer3.1", "layer4.0") for d in ("mahalanobis", "knn")}
    expected_keys |= {f"norm_stitched|{f}|layer4.0" for f in ("layer3.1", "layer4.0")}
    assert set(arrays) == expected_keys and all(a.dtype == np.float64 and a.shape == (64,) for a in arrays.values())
    assert_metrics_from_the_arrays(arrays, matrices, some["rows"], some["cols"])
    assert "scores" in out["conventions"]


def test_ood_test_api_carries_the_bounds():
    from stitch_support import trained_resnet

    import stitchkit

    front = trained_resnet(0)
    grid = stitchkit.direct_match(
        front,
        front,
        ["layer3.0"],
        ["layer4.0"],
        "digits",
        fit_samples=50,
        test_samples=48,
        workers=0,
        progress=False,
        verbose=False,
        device="cpu",
    )
    ood = stitchkit.ood_test(
        grid,
        detectors=["mahalanobis"],
        detector_fit_samples=100,
        test_samples=48,
        bootstrap=BootstrapSpec(resamples=25, seed=1),
    )
    lower, upper = ood.ci("auroc")
    assert lower.shape == upper.shape == (1, 1) and lower[0, 0] <= ood.matrix("auroc").values[0][0] <= upper[0, 0]
    expected = interval_grids(ood.score_arrays(), ["layer3.0"], ["layer4.0"], BootstrapSpec(resamples=25, seed=1))
    assert (
        ood.ci("aupr")[0][0, 0] == expected["aupr|mahalanobis"][0][0, 0]
        and ood.ci("norm_ratio")[1][0, 0] == expected["norm_ratio"][1][0, 0]
    )
    assert ood.matrix("fpr95").interval["resamples"] == 25 and not ood.matrix("accuracy").has_interval
    plain = stitchkit.ood_test(grid, detectors=["mahalanobis"], detector_fit_samples=100, test_samples=48)
    assert not plain.matrix("auroc").has_interval
