"""Direct matching and task loss matching at model level (spec 1.3, 1.3.1; references.md section 2):
self-stitches are exact, the fit equals numpy's lstsq and torch's pinv on the real activations, the
low-rank closed form holds, the grid's cached path equals the single pair's streamed path, and
direct matching alone reads nothing of the training split beyond the K fit images."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from stitch_support import QUICK, SHAPE, trained_resnet, trained_vit

import stitchkit.data
from stitchkit.activations import sample_subset, to_rows
from stitchkit.stitching import StitchSettings, stitch_grid, stitch_pair
from stitchkit.stitching.matching import fit_direct_match, image_pairs
from stitchkit.stitching.stitcher import Stitcher


def _settings(**kw):
    return StitchSettings(**{**QUICK, "epochs": 0, "init": "pinv", **kw})


@pytest.mark.parametrize("kind,layer", [("resnet", "layer1.0"), ("resnet", "layer4.1"), ("vit", "blocks.1")])
def test_a_layer_stitched_to_itself_reproduces_the_model(kind, layer):
    model = trained_resnet(0) if kind == "resnet" else trained_vit(0)
    result = stitch_pair(model, model, layer, layer, _settings(init="pinv"))
    assert result.end_accuracy > 0.25  # a real classifier, not a constant one
    assert result.accuracy == result.end_accuracy == result.front_accuracy
    assert result.residual < 1e-6 and result.residual_batch_mean < 1e-6 and result.fit_residual < 1e-6
    assert result.stitching_type == ("rc2c_pre" if kind == "resnet" else "t2t")


@pytest.mark.parametrize("kind,layer,stitching_type", [("resnet", "layer2.1", "rc2c_pre"), ("vit", "blocks.0", "t2t")])
def test_the_identity_start_of_a_self_stitch_is_the_model(kind, layer, stitching_type):
    """``init="eye"`` starts a self-stitch at the identity (a run needs epochs ≥ 1: an untrained layer is no result)."""
    model = trained_resnet(0) if kind == "resnet" else trained_vit(0)
    x = torch.stack([stitchkit.data.get_dataset("digits", "test")[i][0] for i in range(32)])
    stitcher = Stitcher(model, model, layer, layer, stitching_type, input_shape=SHAPE, init="eye")
    with torch.no_grad():
        torch.testing.assert_close(stitcher(x), model(x))


def _fit_rows(front, end, front_layer, end_layer, k=100, seed=0, size=None):
    data = sample_subset(stitchkit.data.get_dataset("digits", "train", augment=False), k, seed)
    x = torch.stack([data[i][0] for i in range(len(data))])
    stitcher = Stitcher(front, end, front_layer, end_layer, "rc2c_pre", input_shape=SHAPE)
    with torch.no_grad():
        fa, ea = stitcher.front(x), stitcher.end_prefix(x)
    return stitcher, fa, ea


def test_model_level_direct_matching_equals_numpy_lstsq():
    front, end = trained_resnet(0), trained_resnet(1)
    stitcher, fa, ea = _fit_rows(front, end, "layer3.0", "layer1.1")
    src = F.interpolate(fa, size=ea.shape[2:], mode="bilinear", align_corners=False)  # the transform's input
    xs, _ = to_rows(src.double())
    ys, _ = to_rows(ea.double())
    xa = np.concatenate([xs.numpy(), np.ones((xs.shape[0], 1))], axis=1)
    theta, *_ = np.linalg.lstsq(xa, ys.numpy(), rcond=None)
    loader = torch.utils.data.DataLoader(
        sample_subset(stitchkit.data.get_dataset("digits", "train", augment=False), 100, 0), batch_size=32
    )
    result = fit_direct_match(stitcher, image_pairs(stitcher, loader, "cpu"))
    weight, bias = stitcher.layer.affine()
    np.testing.assert_allclose(weight.double().numpy(), theta[:-1].T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bias.double().numpy(), theta[-1], rtol=1e-4, atol=1e-5)
    pred = xs @ torch.from_numpy(theta[:-1]) + torch.from_numpy(theta[-1])
    expected = float(((pred - ys) ** 2).sum() / (ys**2).sum())
    assert result.residual == pytest.approx(expected, rel=1e-4)
    assert result.n_rows == 100 * 28 * 28


@pytest.mark.parametrize("mode", ["fixed", "per_batch"])
def test_low_rank_source_closed_form_and_min_norm_solution(mode):
    """DM from the rank-k source X_k (+ mean) to the full X of the same layer leaves exactly the
    discarded variance: Σ_{i>k} sᵢ² / ‖X‖²_F (references.md section 2); [X_k, 1] is rank deficient and
    the installed map is pinv's minimum-norm solution. With K ≤ batch size both modes agree."""
    model = trained_resnet(0)
    k = 3
    result = stitch_pair(model, model, "layer2.1", "layer2.1", _settings(front_pinv_rank=k, low_rank_mode=mode))
    _, fa, _ = _fit_rows(model, model, "layer2.1", "layer2.1")
    rows, _ = to_rows(fa.double())
    s = torch.linalg.svdvals(rows - rows.mean(0))
    assert result.dm_rank == k
    assert result.dm_fit_residual == pytest.approx(float((s[k:] ** 2).sum() / (rows**2).sum()), rel=1e-4)
    mean = rows.mean(0)
    u, sv, vh = torch.linalg.svd(rows - mean, full_matrices=False)
    xk = (u[:, :k] * sv[:k]) @ vh[:k] + mean
    theta = torch.linalg.pinv(torch.cat([xk, torch.ones(len(xk), 1, dtype=xk.dtype)], 1)) @ rows
    stitcher = Stitcher(model, model, "layer2.1", "layer2.1", "rc2c_pre", input_shape=SHAPE)
    loader = torch.utils.data.DataLoader(
        sample_subset(stitchkit.data.get_dataset("digits", "train", augment=False), 100, 0), batch_size=256
    )
    fit_direct_match(stitcher, image_pairs(stitcher, loader, "cpu"), rank=k, low_rank_mode=mode)
    weight, bias = stitcher.layer.affine()
    np.testing.assert_allclose(weight.double().numpy(), theta[:-1].T.numpy(), atol=2e-4)
    np.testing.assert_allclose(bias.double().numpy(), theta[-1].numpy(), atol=2e-4)


def test_the_grid_reuses_activations_and_matches_single_pairs(tmp_path):
    front, end = trained_resnet(0), trained_resnet(1)
    settings = _settings(test_samples=120)
    grid = stitch_grid(front, end, ["layer1.1", "layer3.1"], "layer2.0,layer4.0", settings, save_dir=tmp_path / "grid")
    assert [(r.front_layer, r.end_layer) for r in grid] == [
        ("layer1.1", "layer2.0"),
        ("layer1.1", "layer4.0"),
        ("layer3.1", "layer2.0"),
        ("layer3.1", "layer4.0"),
    ]
    single = stitch_pair(front, end, "layer3.1", "layer4.0", settings)
    cached = grid[3]
    assert cached.accuracy == single.accuracy
    assert cached.residual == pytest.approx(single.residual, rel=1e-5)
    assert cached.fit_residual == pytest.approx(single.fit_residual, rel=1e-5)
    assert cached.front_accuracy == single.front_accuracy and cached.end_accuracy == single.end_accuracy
    assert cached.run_name == single.run_name  # the same run, whichever way it was computed
    assert not (tmp_path / "grid" / ".activation_cache").exists()


class _Counting(torch.utils.data.Dataset):
    def __init__(self, base, seen):
        self.base, self.seen = base, seen

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.seen.add(int(i))
        return self.base[i]


@pytest.mark.parametrize("grid", [False, True])
def test_direct_matching_alone_reads_only_the_k_fit_images(monkeypatch, grid):
    real = stitchkit.data.get_dataset
    seen, requests = set(), []

    def counting(name, split="train", *args, **kwargs):
        requests.append((split, kwargs.get("augment")))
        ds = real(name, split, *args, **kwargs)
        return _Counting(ds, seen) if split == "train" else ds

    monkeypatch.setattr(stitchkit.data, "get_dataset", counting)
    model = trained_resnet(0)
    layers = ["layer1.0", "layer2.0"] if grid else ["layer2.0"]
    stitch_grid(
        model, trained_resnet(1), layers, layers, _settings(fit_samples=37, front_stitch_rank=2, test_samples=50)
    )
    assert requests == [("train", False), ("test", None)]
    assert len(seen) == 37


def test_pinv_then_training_starts_from_the_direct_matching_solution():
    front, end = trained_resnet(0), trained_resnet(1)
    dm = stitch_pair(front, end, "layer3.0", "layer3.0", _settings(test_samples=100))
    still = stitch_pair(
        front,
        end,
        "layer3.0",
        "layer3.0",
        _settings(
            epochs=1,
            test_samples=100,
            train_samples=64,
            optim=StitchSettings().optim.__class__(lr=1e-12, weight_decay=0.0),
        ),
    )
    assert still.accuracy == dm.accuracy and still.residual == pytest.approx(dm.residual, rel=1e-5)
    assert still.dm_fit_residual == pytest.approx(dm.fit_residual, rel=1e-6)
    assert len(still.train_history) == 1 and not math.isnan(still.train_history[0]["val_acc"])
    assert still.options["train_samples"] == 64 and dm.options["train_samples"] is None
