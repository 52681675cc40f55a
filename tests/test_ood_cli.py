"""`stitchkit detector` and `stitchkit ood` end to end on tiny models and offline data."""

import json

import numpy as np
import pytest
import torch

from stitchkit.cli import build_parser, main
from stitchkit.models import get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.models.layers import layered
from stitchkit.models.loading import load_model
from stitchkit.ood import DetectorRegistry


def l2_norms(acts) -> np.ndarray:
    """Each sample's L2 norm over its whole activation, in float64 numpy."""
    a = acts.detach().double().numpy()
    return np.sqrt((a.reshape(len(a), -1) ** 2).sum(axis=1))


def assert_quantiles(summary, values) -> None:
    """A recorded score distribution equals numpy's of the score array written beside it."""
    v = np.asarray(values, dtype=np.float64)
    assert summary["n"] == v.size and (summary["min"], summary["max"]) == (v.min(), v.max())
    assert [summary[k] for k in ("q25", "q50", "q75")] == pytest.approx(
        np.quantile(v, [0.25, 0.5, 0.75]).tolist(), rel=1e-12
    )
    assert summary["mean"] == pytest.approx(v.mean(), rel=1e-12)


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [["detector"], ["detector", "train"], ["detector", "check"], ["ood"]])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as info:
        main(command + ["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "stitchkit detector train" in out or "stitchkit ood" in out


def test_the_original_flags_are_accepted():
    args = build_parser().parse_args(
        "detector train m.pt resnet18 layer3.1 -m repr_cls_resnet18 -d cifar10 -data /d -e 5 -b 512 -gpu -1 -s 3 -lr "
        "0.01 -wd 0 "
        "-rlre 2 4 -dir out -sf 2 -ftidd cifar5m -ftiddata /a -ftoodd outlier_exposure -ftooddata /b -fe 7 -m-in -20 "
        "-m-out -5 "
        "-score OE -fdir reg".split()
    )
    assert (args.source_model_path, args.source_model_type, args.source_layer_name, args.model_type) == (
        "m.pt",
        "resnet18",
        "layer3.1",
        "repr_cls_resnet18",
    )
    assert (
        args.dataset,
        args.data_root,
        args.epochs,
        args.batch_size,
        args.device,
        args.seed,
        args.lr,
        args.weight_decay,
    ) == ("cifar10", "/d", 5, 512, "-1", 3, 0.01, 0.0)
    assert (
        args.milestones,
        args.save_dir,
        args.save_frequency,
        args.ft_id_dataset,
        args.ft_id_root,
        args.ft_ood_dataset,
    ) == ([2, 4], "out", 2, "cifar5m", "/a", "outlier_exposure")
    assert (args.ft_ood_root, args.ft_epochs, args.m_in, args.m_out, args.score, args.final_save_dir) == (
        "/b",
        7,
        -20.0,
        -5.0,
        "OE",
        "reg",
    )
    ood = build_parser().parse_args(
        (
            "ood res -d cifar10 -b 64 -gpu 0 -data /d -idd cifar10 -iddata /i -detectors det -scd svhn -scdata /s -ed e"
        ).split()
    )
    assert (
        ood.source_dir,
        ood.dataset,
        ood.batch_size,
        ood.id_dataset,
        ood.id_root,
        ood.detector_dir,
        ood.sanity_dataset,
        ood.sanity_root,
        ood.out,
    ) == ("res", "cifar10", 64, "cifar10", "/i", "det", "svhn", "/s", "e")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4).eval()
    return tmp, save_checkpoint(tmp / "source.pt", model, dataset="digits", input_shape=(1, 28, 28))


def test_detector_train_all_layers_check_and_list(source, capsys):
    tmp, path = source
    code, out, err = run(
        [
            "detector",
            "train",
            path,
            "-",
            "--layers",
            "all",
            "-m",
            "repr_cls_resnet18",
            "--width",
            "4",
            "-e",
            "1",
            "-fe",
            "1",
            "-b",
            "16",
            "-ftoodd",
            "natural_patches_gray",
            "--train-subset",
            "32",
            "--ft-samples",
            "16",
            "--val-subset",
            "16",
            "-gpu",
            "-1",
            "-dir",
            tmp / "det",
            "-fdir",
            tmp / "fdir",
            "--no-progress",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [line["layer"] for line in lines] == [
        "layer1.0",
        "layer1.1",
        "layer2.0",
        "layer2.1",
        "layer3.0",
        "layer3.1",
        "layer4.0",
        "layer4.1",
    ]
    assert "FT Epoch #1 FT loss" in out and len(DetectorRegistry(tmp / "fdir").entries()) == 8
    code, out, err = run(
        [
            "detector",
            "check",
            path,
            "--layers",
            "layer1.0",
            "layer4.1",
            "-detectors",
            tmp / "fdir",
            "-scd",
            "noise",
            "--training-free",
            "knn",
            "--knn-k",
            "5",
            "--fit-samples",
            "64",
            "--id-samples",
            "48",
            "--sanity-samples",
            "48",
            "-gpu",
            "-1",
            "-o",
            tmp / "check.json",
        ],
        capsys,
    )
    assert code == 0, err
    assert "energy AUROC" in out and "knn AUROC" in out and "layer4.1" in out and "ID positive" in out
    assert set(json.loads((tmp / "check.json").read_text())["metrics"]) == {"layer1.0", "layer4.1"}
    code, out, _ = run(["detector", "list", "-fdir", tmp / "fdir"], capsys)
    assert code == 0 and out.count("repr_cls_resnet18") == 8
    code, _, err = run(["detector", "train", path, "-", "-dir", tmp / "x", "-gpu", "-1"], capsys)
    assert code == 2 and "give the layer" in err
    code, _, err = run(["detector", "train", path, "-", "layer9.9", "-dir", tmp / "x", "-gpu", "-1"], capsys)
    assert code == 2 and "valid layers" in err


def test_ood_command_on_a_folder_of_stitches(source, capsys):
    from stitchkit.stitching import StitchSettings, stitch_grid

    tmp, path = source
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
    stitch_grid(str(path), str(path), ["layer3.1", "layer4.0"], ["layer4.0"], settings, save_dir=tmp / "stitches")
    code, out, err = run(
        [
            "ood",
            tmp / "stitches",
            "-detectors",
            "none",
            "--training-free",
            "mahalanobis",
            "knn",
            "--knn-k",
            "5",
            "--fit-samples",
            "100",
            "--test-samples",
            "64",
            "-scd",
            "noise",
            "-gpu",
            "-1",
            "-b",
            "32",
            "--original-output",
        ],
        capsys,
    )
    assert code == 0, err
    assert (
        "STITCHING ACCURACY" in out
        and "STITCHING OOD Detection AUROC (mahalanobis)" in out
        and "sanity checks: noise" in out
    )
    data = json.loads((tmp / "stitches" / "ood" / "ood_matrices.json").read_text())
    assert data["front_layers"] == ["layer3.1", "layer4.0"] and data["end_layers"] == ["layer4.0"]
    # layer4.0 direct-matched to itself is in distribution
    assert data["detectors"]["mahalanobis"]["auroc"][1][0] == pytest.approx(0.5, abs=0.05)
    assert (tmp / "stitches" / "ood" / "accuracy.csv").is_file()
    runs = list((tmp / "stitches" / "ood" / "energies" / "runs").iterdir())
    assert len(runs) == 2 and all((r / "knn.npy").is_file() for r in runs)
    assert (tmp / "stitches" / "ood" / "energies" / "id" / "layer4.0" / "mahalanobis.npy").is_file()
    for record in data["runs"].values():  # the grouped pass gives the stitch the grid evaluated
        assert record["accuracy"] == pytest.approx(record["stitched_accuracy_in_result_json"], abs=1e-9)
    # beside each AUROC what explains it: the score distributions are those of the written score arrays
    assert "NORM RATIO" in out and "MEDIAN SCORE (knn" in out
    ood_dir = tmp / "stitches" / "ood"
    assert (ood_dir / "norm_ratio.csv").is_file() and (ood_dir / "median_score_mahalanobis.csv").is_file()
    for name in ("mahalanobis", "knn"):
        genuine = data["genuine"]["layer4.0"]["scores"][name]
        assert_quantiles(genuine, np.load(ood_dir / "energies" / "id" / "layer4.0" / f"{name}.npy"))
        for run_name, record in data["runs"].items():
            stitched = record["metrics"][name]["ood_score_summary"]
            assert_quantiles(stitched, np.load(ood_dir / "energies" / "runs" / run_name / f"{name}.npy"))
            assert (
                record["metrics"][name]["id_score_summary"] == genuine
            )  # every stitch into layer4.0 has the same ID side
            row = data["front_layers"].index(record["front_layer"])
            assert (
                data["detectors"][name]["median_score"][row][0] == stitched["q50"]
                and data["norm_ratio"][row][0] == record["norm_ratio"]
            )
    # one stitch per suffix pass gives the same matrices as all stitches of an end layer together
    from stitchkit.ood.stitched import ResultsOODSettings, evaluate_results_dir

    single = ResultsOODSettings(
        training_free=["mahalanobis"],
        training_free_options={"mahalanobis": {}},
        fit_samples=100,
        test_samples=64,
        device="cpu",
        batch_size=32,
        group_size=1,
    )
    [exp] = evaluate_results_dir(tmp / "stitches", single, out_dir=tmp / "ood_single", log=lambda m: None)
    np.testing.assert_allclose(
        exp.matrices.matrix("auroc", "mahalanobis"), data["detectors"]["mahalanobis"]["auroc"], atol=1e-9
    )
    # and each stitch's scores are those of the per-stitch pass (evaluate_stitched over its own batches)
    from stitchkit.activations import sample_subset
    from stitchkit.data import get_dataset
    from stitchkit.ood.evaluate import evaluate_stitched, fit_training_free
    from stitchkit.ood.settings import PassOptions
    from stitchkit.stitching import load_stitcher

    model = load_model(str(path))[0].eval()
    fitted = fit_training_free(
        model,
        ["layer4.0"],
        sample_subset(get_dataset("digits", "train", augment=False), 100, seed=0),
        names=["mahalanobis"],
        options={"mahalanobis": {}},
        scoring=PassOptions(device="cpu"),
    )
    test = sample_subset(get_dataset("digits", "test"), 64)
    with (
        torch.no_grad()
    ):  # the norm ratio's denominator, independently: the end network's own layer4.0 on the ID test images
        genuine_norms = np.concatenate(
            [
                l2_norms(layered(model).prefix("layer4.0")(x))
                for x, _ in torch.utils.data.DataLoader(test, batch_size=32)
            ]
        )
    for run_name, res in exp.runs.items():
        stitcher = load_stitcher(tmp / "stitches" / run_name, front=model, end=model).eval()
        with torch.no_grad():
            batches = [
                (stitcher.stitch(stitcher.front(x)), y) for x, y in torch.utils.data.DataLoader(test, batch_size=32)
            ]
        alone = evaluate_stitched(
            model,
            res.end_layer,
            fitted["layer4.0"],
            batches,
            id_scores={"mahalanobis": np.zeros(3)},
            id_norms=genuine_norms,
        )
        assert alone.accuracy == pytest.approx(res.accuracy, abs=1e-9)
        np.testing.assert_allclose(alone.ood_scores["mahalanobis"], res.ood_scores["mahalanobis"], rtol=1e-4, atol=1e-4)
        stitched_norms = np.concatenate([l2_norms(act) for act, _ in batches])
        assert res.norm_ratio == pytest.approx(stitched_norms.mean() / genuine_norms.mean(), rel=1e-4)
        assert alone.norm_ratio == pytest.approx(res.norm_ratio, rel=1e-4)
        assert (
            res.genuine_norm.mean == pytest.approx(genuine_norms.mean(), rel=1e-5)
            and res.stitched_norm.n == stitched_norms.size == 64
        )
