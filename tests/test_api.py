"""The Python API (stitchkit.direct_match, task_loss_match, stitch_grid, compare, ood_test): its numbers
are the library's and the commands' on the same inputs, whatever form the models and data take; its
results convert to pandas, plot and round-trip; bad input is one clear error; and the notebook
tutorial's example (docs/tutorials/notebook.md) runs as written."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from stitch_support import RESNET, SHAPE, trained_resnet
from torch.utils.data import DataLoader, Subset, TensorDataset

import stitchkit
from stitchkit.data import get_dataset
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.results import Matrix
from stitchkit.stitching.grid import stitch_grid as library_stitch_grid
from stitchkit.stitching.settings import StitchSettings

ROOT = Path(__file__).resolve().parents[1]
QUICK = dict(device="cpu", workers=0)
LAYERS = ["layer1.0", "layer3.0"]
#: the per-pair numbers that must agree between two paths
NUMBERS = (
    "accuracy",
    "loss",
    "residual",
    "residual_batch_mean",
    "fit_residual",
    "dm_fit_residual",
    "front_accuracy",
    "end_accuracy",
    "n_fit",
    "n_test",
)


def _library(front, end, front_layers, end_layers, **settings):
    s = StitchSettings(dataset="digits", progress=False, verbose=False, **{**QUICK, **settings})
    return library_stitch_grid(front, end, front_layers, end_layers, s)


def _same_numbers(api_pairs, library_pairs):
    assert [(r.front_layer, r.end_layer) for r in api_pairs] == [(r.front_layer, r.end_layer) for r in library_pairs]
    for a, b in zip(api_pairs, library_pairs):
        for name in NUMBERS:
            assert getattr(a, name) == getattr(b, name), name
        assert a.train_history == b.train_history or [
            {k: v for k, v in h.items() if k != "seconds"} for h in a.train_history
        ] == [{k: v for k, v in h.items() if k != "seconds"} for h in b.train_history]


@pytest.fixture(scope="module")
def donors():
    return trained_resnet(0), trained_resnet(1)


def test_direct_match_equals_the_library_grid(donors):
    front, end = donors
    grid = stitchkit.direct_match(front, end, LAYERS, LAYERS, "digits", fit_samples=50, test_samples=64, **QUICK)
    reference = _library(front, end, LAYERS, LAYERS, init="pinv", epochs=0, fit_samples=50, test_samples=64)
    _same_numbers(grid.pairs, reference)
    assert [r.config_key for r in grid.pairs] == [
        r.config_key for r in reference
    ]  # the same experiment, named the same


def test_task_loss_match_equals_the_library_and_keeps_the_stitched_network(donors):
    front, end = donors
    options = dict(epochs=1, train_samples=64, test_samples=64, batch_size=32, **QUICK)
    tlm = stitchkit.task_loss_match(front, end, "layer2.0", "layer2.0", "digits", **options)
    _same_numbers([tlm.pair()], _library(front, end, ["layer2.0"], ["layer2.0"], init="rand", **options))
    from_dm = stitchkit.task_loss_match(
        front, end, "layer2.0", "layer2.0", "digits", from_dm=True, fit_samples=50, **options
    )
    _same_numbers(
        [from_dm.pair()], _library(front, end, ["layer2.0"], ["layer2.0"], init="pinv", fit_samples=50, **options)
    )
    stitcher = tlm.stitcher()
    x, y = next(iter(DataLoader(Subset(get_dataset("digits", "test"), range(64)), batch_size=64)))
    with torch.no_grad():
        accuracy = (stitcher(x).argmax(1) == y).float().mean().item()
    assert accuracy == pytest.approx(tlm.pair().accuracy, abs=1e-9)  # the kept network is the evaluated one


def test_data_in_memory_as_datasets_pairs_dicts_and_loaders_gives_the_named_numbers(donors):
    front, end = donors
    named = stitchkit.direct_match(front, end, LAYERS, "layer3.0", "digits", fit_samples=50, test_samples=64, **QUICK)
    train, test = get_dataset("digits", "train", augment=False), get_dataset("digits", "test")
    for data in (
        (train, test),
        {"train": train, "test": test},
        (DataLoader(train, batch_size=256), DataLoader(test, batch_size=256)),
    ):
        memory = stitchkit.direct_match(front, end, LAYERS, "layer3.0", data, fit_samples=50, test_samples=64, **QUICK)
        _same_numbers(memory.pairs, named.pairs)
        assert (
            memory.pairs[0].dataset.startswith("memory:")
            and not memory.data.named
            and memory.data.info.num_classes == 10
        )
    # training on the augmented split given in memory is training on the named one
    options = dict(epochs=1, train_samples=64, test_samples=64, batch_size=32, **QUICK)
    named_tlm = stitchkit.task_loss_match(front, end, "layer2.0", "layer2.0", "digits", **options)
    data = {"train": train, "test": test, "train_augmented": get_dataset("digits", "train", augment=True)}
    _same_numbers(stitchkit.task_loss_match(front, end, "layer2.0", "layer2.0", data, **options).pairs, named_tlm.pairs)


def test_a_plain_tensor_dataset_and_its_loaders_batch_size(donors):
    front, end = donors
    test = get_dataset("digits", "test")
    x = torch.stack([test[i][0] for i in range(80)])
    y = torch.tensor([test[i][1] for i in range(80)])
    data = TensorDataset(x, y)
    one = stitchkit.direct_match(front, end, "layer3.0", "layer3.0", data, fit_samples=40, **QUICK)
    assert one.pair().n_test == 80 and one.pair().n_fit == 40 and one.data.info.shape == SHAPE
    loaded = stitchkit.direct_match(
        front, end, "layer3.0", "layer3.0", DataLoader(data, batch_size=16), fit_samples=40, **QUICK
    )
    assert (
        loaded.settings.batch_size == 16 and loaded.pair().residual_batch_mean != one.pair().residual_batch_mean
    )  # per-batch mean at 16
    assert loaded.pair().residual == pytest.approx(
        one.pair().residual, rel=1e-5
    )  # the pooled residual does not depend on batches
    # labels 0..k-1 only: the class count is the model's
    few = TensorDataset(x[y < 5], y[y < 5])
    assert (
        stitchkit.direct_match(front, end, "layer3.0", "layer3.0", few, fit_samples=20, **QUICK).data.info.num_classes
        == 10
    )


def test_checkpoints_and_registered_names_are_the_same_networks(tmp_path, donors):
    front, end = donors
    paths = [
        save_checkpoint(tmp_path / f"m{i}.pt", m, dataset="digits", input_shape=SHAPE) for i, m in enumerate(donors)
    ]
    by_path = stitchkit.direct_match(
        str(paths[0]), paths[1], "layer2.0", "layer2.0", "digits", fit_samples=50, test_samples=64, **QUICK
    )
    by_module = stitchkit.direct_match(
        front, end, "layer2.0", "layer2.0", "digits", fit_samples=50, test_samples=64, **QUICK
    )
    _same_numbers(by_path.pairs, by_module.pairs)
    assert by_path.front.path == str(paths[0]) and by_path.front.fingerprint == by_module.front.fingerprint
    # a name builds the architecture untrained, the front seeded with seed, the end with seed + 1
    named = stitchkit.direct_match(
        "resnet18",
        "resnet18",
        "layer2.0",
        "layer2.0",
        "digits",
        model_options=RESNET,
        seed=3,
        fit_samples=50,
        test_samples=64,
        **QUICK,
    )
    built = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        built.append(get_model("resnet18", num_classes=10, in_channels=1, input_size=SHAPE[1:], **RESNET).eval())
    _same_numbers(
        named.pairs,
        _library(*built, ["layer2.0"], ["layer2.0"], init="pinv", epochs=0, seed=3, fit_samples=50, test_samples=64),
    )
    same = stitchkit.direct_match(
        str(paths[0]), str(paths[0]), "layer2.0", "layer2.0", "digits", fit_samples=50, test_samples=64, **QUICK
    )
    assert (
        same.front is same.end and same.pair().accuracy == same.pair().front_accuracy
    )  # one network, stitched to itself


def test_stitch_grid_results_convert_plot_and_round_trip(donors, tmp_path):
    front, end = donors
    grid = stitchkit.stitch_grid(
        front, end, LAYERS, "layer2.0,layer3.0", "digits", method="dm", fit_samples=50, test_samples=64, **QUICK
    )
    df = grid.to_pandas()
    assert df.shape[0] == 4 and list(df["front_layer"]) == ["layer1.0", "layer1.0", "layer3.0", "layer3.0"]
    assert list(df["accuracy"]) == [r.accuracy for r in grid.pairs]
    acc = grid.matrix("accuracy")
    wide = acc.to_pandas()
    assert wide.shape == (2, 2) and list(wide.index) == LAYERS and list(wide.columns) == ["layer2.0", "layer3.0"]
    assert wide.loc["layer3.0", "layer2.0"] == grid.pair("layer3.0", "layer2.0").accuracy
    assert acc.kind == "accuracy" and acc.name == "DM accuracy" and grid.matrix("residual").kind == "distance"
    assert acc.provenance.models == {"front": grid.front.fingerprint, "end": grid.end.fingerprint}
    assert acc.provenance.options["fit_samples"] == 50 and "residual" in acc.provenance.conventions
    fig = grid.plot()
    assert isinstance(fig, Figure) and [ax.get_title() for ax in fig.axes if ax.images] == [
        "DM accuracy",
        "DM residual",
    ]
    assert isinstance(grid.plot("fit_residual"), Figure)
    data = json.loads(json.dumps(grid.to_dict()))
    assert Matrix.from_dict(data["matrices"]["accuracy"]).to_dict() == acc.to_dict()
    assert Matrix.load(acc.save(tmp_path / "acc.csv")).values == acc.values


def test_stitch_grid_with_a_folder_skips_finished_pairs_and_reloads_their_networks(donors, tmp_path):
    front, end = donors
    first = stitchkit.stitch_grid(
        front,
        end,
        "layer2.0",
        "layer2.0",
        "digits",
        save_dir=tmp_path / "runs",
        fit_samples=50,
        test_samples=64,
        **QUICK,
    )
    again = stitchkit.stitch_grid(
        front,
        end,
        "layer2.0",
        "layer2.0",
        "digits",
        save_dir=tmp_path / "runs",
        fit_samples=50,
        test_samples=64,
        **QUICK,
    )
    assert again.pair().skipped and again.pair().accuracy == first.pair().accuracy and not again.stitchers
    x = next(iter(DataLoader(Subset(get_dataset("digits", "test"), range(32)), batch_size=32)))[0]
    with torch.no_grad():
        torch.testing.assert_close(again.stitcher()(x), first.stitcher()(x), rtol=1e-4, atol=1e-5)


def test_compare_equals_the_similarity_command(tmp_path, donors):
    from stitchkit.similarity.models import compare_checkpoints
    from stitchkit.similarity.settings import SimilaritySettings

    paths = [
        save_checkpoint(tmp_path / f"m{i}.pt", m, dataset="digits", input_shape=SHAPE) for i, m in enumerate(donors)
    ]
    measures = ["cka", "procrustes"]
    result = stitchkit.compare(
        str(paths[0]), str(paths[1]), LAYERS, "digits", measures=measures, n_samples=100, device="cpu"
    )
    settings = SimilaritySettings(measures=measures, n_samples=100, all_pairs=True, device="cpu")
    reference = compare_checkpoints(str(paths[0]), str(paths[1]), layers1=LAYERS, layers2=LAYERS, settings=settings)
    timeless = lambda report: [{k: v for k, v in r.to_dict().items() if k != "seconds"} for r in report.results]  # noqa: E731
    assert timeless(result.report) == timeless(reference)
    cka = result.matrix("cka")
    assert cka.rows == LAYERS and cka.cols == LAYERS and cka.kind == "similarity" and cka.range == (0.0, 1.0)
    for r in reference.results:
        if r.result.measure == "cka":
            assert cka[r.x.layer, r.y.layer] == r.value
    assert result.matrix("procrustes").kind == "distance"
    assert result.to_pandas().shape[0] == len(reference.results) == 2 * 2 * 2
    fig = result.plot()
    assert isinstance(fig, Figure) and sum(1 for ax in fig.axes if ax.images) == 2
    # modules, and another pairing of layers
    front, end = donors
    other = stitchkit.compare(
        front,
        end,
        ["layer1.0"],
        "digits",
        layers_b=["layer2.0", "layer3.0"],
        measures=["cka"],
        n_samples=100,
        device="cpu",
    )
    assert other.matrix().shape == (1, 2) and other.matrix()["layer1.0", "layer3.0"] == cka["layer1.0", "layer3.0"]


def test_compare_takes_a_settings_record_with_options_over_it(donors):
    from stitchkit.similarity import SimilaritySettings

    front, end = donors
    settings = SimilaritySettings(measures=["cka"], n_samples=60, all_pairs=True, device="cpu")
    by_options = stitchkit.compare(front, end, LAYERS, "digits", measures=["cka"], n_samples=60, device="cpu")
    by_record = stitchkit.compare(front, end, LAYERS, "digits", settings=settings)
    np.testing.assert_array_equal(by_record.matrix("cka").values, by_options.matrix("cka").values)
    # an option replaces the record's field; the record's own default pairs the layers i-th with i-th
    fewer = stitchkit.compare(front, end, LAYERS, "digits", settings=settings, n_samples=40)
    assert fewer.report.info["n_samples"] == 40 and settings.n_samples == 60
    plain = SimilaritySettings(measures=["cka"], n_samples=60, device="cpu")
    matching = stitchkit.compare(front, end, LAYERS, "digits", settings=plain)
    assert matching.report.info["all_pairs"] is False and len(matching.report.results) == len(LAYERS)
    with pytest.raises(TypeError):
        SimilaritySettings(["cka"])  # a record is built with keywords only


class _MLP(torch.nn.Module):
    """A plain user module (no stitchkit spec): its layers are ``body.0`` … ``body.5`` (``"every"``; ``"all"``
    leaves out the ReLUs ``body.2``, ``body.4`` and the logits ``body.5``)."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(64, 32),
            torch.nn.ReLU(),
            torch.nn.Linear(32, 16),
            torch.nn.ReLU(),
            torch.nn.Linear(16, 10),
        )

    def forward(self, x):
        return self.body(x)


def _linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019, eq. 5) in float64 from the centred features: ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_compare_cka_is_one_on_the_model_itself_and_invariant_to_an_orthogonal_transform():
    torch.manual_seed(0)
    a = _MLP().eval()
    b = _MLP().eval()
    b.load_state_dict(a.state_dict())
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():  # b's body.3 computes Q · (a's body.3): the same representation, rotated
        b.body[3].weight.copy_(q @ a.body[3].weight)
        b.body[3].bias.copy_(q @ a.body[3].bias)
    x, y = torch.randn(120, 1, 8, 8, generator=torch.Generator().manual_seed(2)), torch.arange(120) % 10
    data = TensorDataset(x, y)
    assert stitchkit.compare(a, a, "all", data, measures=["cka"], n_samples=10, device="cpu").matrix("cka").rows == [
        "body.0",
        "body.1",
        "body.3",
    ]
    itself = stitchkit.compare(a, a, "every", data, measures=["cka"], n_samples=None, device="cpu").matrix("cka")
    np.testing.assert_allclose(np.diag(itself.to_numpy()), 1.0, atol=1e-6)
    np.testing.assert_allclose(itself.to_numpy(), itself.to_numpy().T, atol=1e-6)
    rotated = stitchkit.compare(
        a, b, "every", data, layers_b=["body.3"], measures=["cka"], n_samples=None, device="cpu"
    ).matrix("cka")
    assert rotated.shape == (6, 1) and rotated.cols == ["body.3"]
    np.testing.assert_allclose(rotated.to_numpy()[:, 0], itself.to_numpy()[:, 3], atol=1e-6)
    assert rotated["body.3", "body.3"] == pytest.approx(1.0, abs=1e-6)
    with torch.no_grad():  # against the closed form on features computed here
        hidden, rotated_out = a.body[:3](x).double().numpy(), b.body[:4](x).double().numpy()
    assert rotated["body.2", "body.3"] == pytest.approx(_linear_cka(hidden, rotated_out), abs=1e-6)
    # a DataLoader of the same data gives the same matrix
    loaded = stitchkit.compare(
        a,
        b,
        "every",
        DataLoader(data, batch_size=32),
        layers_b=["body.3"],
        measures=["cka"],
        n_samples=None,
        device="cpu",
    )
    np.testing.assert_allclose(loaded.matrix("cka").to_numpy(), rotated.to_numpy(), atol=1e-6)


def test_ood_test_equals_the_ood_command_on_the_same_stitches(donors, tmp_path):
    from stitchkit.ood.stitched import ResultsOODSettings, evaluate_results_dir

    front, end = donors
    options = dict(fit_samples=50, test_samples=64, **QUICK)
    grid = stitchkit.direct_match(front, end, ["layer2.0", "layer3.0"], ["layer3.0", "layer4.0"], "digits", **options)
    ood = stitchkit.ood_test(
        grid,
        detectors=["mahalanobis", "knn"],
        detector_options={"knn": {"k": 5}},
        detector_fit_samples=100,
        test_samples=64,
    )
    paths = [
        save_checkpoint(tmp_path / f"m{i}.pt", m, dataset="digits", input_shape=SHAPE) for i, m in enumerate(donors)
    ]
    s = StitchSettings(init="pinv", epochs=0, dataset="digits", progress=False, verbose=False, **options)
    library_stitch_grid(
        str(paths[0]), str(paths[1]), ["layer2.0", "layer3.0"], ["layer3.0", "layer4.0"], s, save_dir=tmp_path / "runs"
    )
    settings = ResultsOODSettings(
        training_free=["mahalanobis", "knn"],
        training_free_options={"knn": {"k": 5}},
        fit_samples=100,
        test_samples=64,
        device="cpu",
    )
    [exp] = evaluate_results_dir(tmp_path / "runs", settings, log=lambda m: None)
    assert ood.detectors == exp.matrices.detectors == ["mahalanobis", "knn"]
    np.testing.assert_allclose(ood.matrix("accuracy").to_numpy(), exp.matrices.matrix("accuracy"), atol=1e-9)
    for detector in ood.detectors:
        for metric in ("auroc", "aupr", "fpr95"):
            np.testing.assert_allclose(
                ood.matrix(metric, detector).to_numpy(), exp.matrices.matrix(metric, detector), atol=1e-6
            )
    for key, result in ood.ood.results.items():  # the scores themselves, stitch by stitch
        theirs = exp.matrices.results[key]
        for name in ood.detectors:
            np.testing.assert_allclose(result.ood_scores[name], theirs.ood_scores[name], rtol=1e-4, atol=1e-5)
    auroc = ood.matrix("auroc", "knn")
    assert (
        auroc.rows == ["layer2.0", "layer3.0"]
        and auroc.cols == ["layer3.0", "layer4.0"]
        and auroc.name == "AUROC (knn)"
    )
    df = ood.to_pandas()
    assert (
        df.shape[0] == 4 * 2
        and set(df["detector"]) == {"mahalanobis", "knn"}
        and {"auroc", "aupr", "fpr95"} <= set(df.columns)
    )
    assert isinstance(ood.plot(), Figure) and isinstance(ood.plot("fpr95", "knn"), Figure)
    written = ood.save(tmp_path / "ood")
    assert {p.name for p in written} >= {"accuracy.csv", "auroc_knn.csv", "ood_matrices.json"}
    # stitching first, in the same call, gives the same test (test_samples serves both; fit_samples is the stitching's
    # K)
    direct = stitchkit.ood_test(
        front,
        end,
        ["layer2.0", "layer3.0"],
        ["layer3.0", "layer4.0"],
        "digits",
        detectors="mahalanobis",
        method="dm",
        detector_fit_samples=100,
        **options,
    )
    _same_numbers(direct.stitches.pairs, grid.pairs)
    np.testing.assert_allclose(
        direct.matrix("auroc").to_numpy(), ood.matrix("auroc", "mahalanobis").to_numpy(), atol=1e-9
    )


def test_ood_test_with_ready_detectors_and_an_energy_registry(donors, tmp_path):
    from stitchkit.activations import sample_subset
    from stitchkit.ood.evaluate import fit_training_free
    from stitchkit.ood.settings import PassOptions

    front, end = donors
    grid = stitchkit.direct_match(
        front, end, "layer3.0", ["layer3.0", "layer4.0"], "digits", fit_samples=50, test_samples=64, **QUICK
    )
    fitted = fit_training_free(
        end,
        ["layer3.0", "layer4.0"],
        sample_subset(get_dataset("digits", "train", augment=False), 100, seed=0),
        names=["mahalanobis"],
        scoring=PassOptions(device="cpu"),
    )
    ready = stitchkit.ood_test(grid, detectors=fitted, test_samples=64)
    fresh = stitchkit.ood_test(grid, detectors=["mahalanobis"], detector_fit_samples=100, test_samples=64)
    np.testing.assert_allclose(ready.matrix("auroc").to_numpy(), fresh.matrix("auroc").to_numpy(), atol=1e-9)
    with pytest.raises(StitchkitError, match="no detectors given for end layer layer4.0"):
        stitchkit.ood_test(grid, detectors={"layer3.0": fitted["layer3.0"]})
    with pytest.raises(StitchkitError, match="neither a training-free detector"):
        stitchkit.ood_test(grid, detectors=["energy"])
    with pytest.raises(StitchkitError, match="takes no data"):
        stitchkit.ood_test(grid, data="digits")


def test_bad_input_is_one_clear_error(donors, tmp_path):
    front, end = donors
    with pytest.raises(
        StitchkitError, match="unknown option 'fit_sample' of stitchkit.stitch_grid; known options: .*fit_samples"
    ):
        stitchkit.direct_match(front, end, "layer1.0", "layer1.0", "digits", fit_sample=10)
    with pytest.raises(StitchkitError, match="trains nothing"):
        stitchkit.direct_match(front, end, "layer1.0", "layer1.0", "digits", epochs=3)
    with pytest.raises(StitchkitError, match="does not take init="):
        stitchkit.stitch_grid(front, end, "layer1.0", "layer1.0", "digits", init="rand")
    with pytest.raises(StitchkitError, match="unknown stitching method 'pinv'"):
        stitchkit.stitch_grid(front, end, "layer1.0", "layer1.0", "digits", method="pinv")
    with pytest.raises(
        StitchkitError, match="neither an nn.Module, nor a checkpoint file, nor a registered model name"
    ):
        stitchkit.direct_match("no_such_model", end, "layer1.0", "layer1.0", "digits")
    with pytest.raises(StitchkitError, match="unknown dataset"):
        stitchkit.direct_match(front, end, "layer1.0", "layer1.0", "no_such_data")
    with pytest.raises(StitchkitError, match="must be a dataset name, a torch Dataset"):
        stitchkit.direct_match(front, end, "layer1.0", "layer1.0", 42)
    with pytest.raises(StitchkitError, match="valid layers"):
        stitchkit.direct_match(front, end, "layer9.9", "layer1.0", "digits", **QUICK)
    train = get_dataset("digits", "train", augment=False)
    with pytest.raises(StitchkitError, match="save_dir needs a dataset given by name"):
        stitchkit.direct_match(front, end, "layer1.0", "layer1.0", train, save_dir=tmp_path / "runs", **QUICK)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(StitchkitError, match="cache_dir needs a dataset given by name"):
        stitchkit.compare(front, end, "layer1.0", train, cache_dir=tmp_path / "cache")
    with pytest.raises(StitchkitError, match="3-channel inputs but the data"):
        stitchkit.direct_match(get_model("resnet18", width=4), end, "layer1.0", "layer1.0", "digits")
    with pytest.raises(StitchkitError, match="unknown option 'measure' of stitchkit.compare"):
        stitchkit.compare(front, end, "layer1.0", "digits", measure="cka")
    # a plain module states no input shape: data it cannot take is found by one trial item, before anything runs
    mlp = _MLP()
    with pytest.raises(
        StitchkitError,
        match=r"the front model cannot run on the data's items of shape \(1, 28, 28\) \(digits\): .*shapes",
    ):
        stitchkit.direct_match(mlp, mlp, "body.1", "body.3", "digits", save_dir=tmp_path / "runs", **QUICK)
    assert not (tmp_path / "runs").exists() and mlp.training  # nothing written; the module's mode left as it was
    few_logits = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 4))
    with pytest.raises(StitchkitError, match="gives 4 logits but the data \\(digits\\) has 10 classes"):
        stitchkit.compare(few_logits, few_logits, "all", "digits")
    with pytest.raises(StitchkitError, match="Sequential has no stitchable layers"):
        stitchkit.compare(
            torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), end, "all", "digits", layers_b="layer1.0"
        )
    with pytest.raises(StitchkitError, match="the train items have shape"):
        stitchkit.direct_match(
            front, end, "layer1.0", "layer1.0", (train, TensorDataset(torch.zeros(4, 3, 28, 28), torch.zeros(4).long()))
        )
    with pytest.raises(StitchkitError, match="no pair layer1.0 -> layer4.1"):
        stitchkit.direct_match(
            front, end, "layer1.0", "layer1.0", "digits", fit_samples=20, test_samples=32, **QUICK
        ).pair("layer1.0", "layer4.1")


def test_import_stitchkit_stays_torch_free_until_the_api_is_used():
    probe = (
        "import sys, stitchkit; assert 'torch' not in sys.modules; stitchkit.Matrix; "
        "assert 'torch' not in sys.modules; stitchkit.direct_match; print('torch' in sys.modules)"
    )
    env = dict(
        os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


NOTEBOOK_TUTORIAL = ROOT / "docs" / "tutorials" / "notebook.md"


def tutorial_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", NOTEBOOK_TUTORIAL.read_text(), re.S)
    assert len(blocks) == 1, "the notebook tutorial holds one example"
    return blocks[0]


def test_the_notebook_tutorials_example_runs_as_written():
    code = tutorial_example()
    assert 10 <= len(code.strip().splitlines()) <= 20 and "torchvision.models.resnet18" in code
    namespace: dict = {}
    exec(compile(code, str(NOTEBOOK_TUTORIAL.relative_to(ROOT)), "exec"), namespace)
    dm, sim, ood = namespace["dm"], namespace["sim"], namespace["ood"]
    layers = namespace["layers"]
    assert [(r.front_layer, r.end_layer) for r in dm.pairs] == [(f, e) for f in layers for e in layers]
    assert dm.pairs[0].n_fit == 200 and dm.pairs[0].n_test == 200
    assert all(math.isfinite(r.residual) for r in dm.pairs)
    assert sim.matrix("cka").shape == (2, 2) and ood.matrix("auroc").shape == (2, 2)
    assert all(0.0 <= v <= 1.0 for row in ood.matrix("auroc").values for v in row)
