"""Detectors behind one interface: Mahalanobis and k-NN against independent computations, the energy
fine-tuning loss moves energies the right way."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors
from torch import nn

from stitchkit.errors import StitchkitError
from stitchkit.ood import (
    KNNDetector,
    MahalanobisDetector,
    energy_finetune_loss,
    energy_score,
    make_detector,
    ood_metrics,
    pool_features,
)
from stitchkit.training import LoopSettings, OptimConfig, build_optimizer, fit


def gaussian_maps(n, shift=0.0, seed=0, classes=3):
    """Conv-like activations (N, C, H, W) whose pooled features are class-dependent Gaussians."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    centres = torch.tensor([[2.0, 0, 0, 0, 0, 0], [0, 2.0, 0, 0, 0, 0], [0, 0, 2.0, 0, 0, 0]])[:classes]
    # the shift moves the features away from every class, in direction as well as distance (k-NN
    # compares L2-normalised features, so only a change of direction is visible to it)
    feats = centres[labels] + 0.5 * torch.randn(n, 6, generator=g) + shift * torch.tensor([-1.0, -1, -1, 1, 1, 1])
    maps = feats[:, :, None, None] + 0.1 * torch.randn(n, 6, 4, 4, generator=g)
    return maps, labels


def test_pooling():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float).reshape(2, 3, 2, 2)
    assert torch.equal(pool_features(x, "avg"), x.mean(dim=(2, 3)))
    tokens = torch.randn(2, 5, 4)
    assert torch.equal(pool_features(tokens, "cls"), tokens[:, 0])
    assert torch.equal(pool_features(tokens, "avg"), tokens.mean(1))
    assert pool_features(tokens, "flatten").shape == (2, 20)
    with pytest.raises(StitchkitError, match="unknown pooling"):
        pool_features(x, "max")


@pytest.mark.parametrize("name,opts", [("mahalanobis", {}), ("knn", {"k": 5})])
def test_training_free_detectors_separate_shifted_data(name, opts):
    train, y = gaussian_maps(600, seed=0)
    test_id, _ = gaussian_maps(300, seed=1)
    test_shifted, _ = gaussian_maps(300, shift=3.0, seed=2)
    test_same, _ = gaussian_maps(300, seed=3)
    det = make_detector(name, **opts).fit(train, y)
    id_s = det.predict(test_id)
    assert ood_metrics(id_s, det.predict(test_shifted)).auroc > 0.99
    assert abs(ood_metrics(id_s, det.predict(test_same)).auroc - 0.5) < 0.1
    # fitting from an iterable of batches gives the same detector
    batched = make_detector(name, **opts).fit([(train[i : i + 64], y[i : i + 64]) for i in range(0, 600, 64)])
    assert torch.allclose(batched.predict(test_id), id_s, rtol=1e-4, atol=1e-4)


def test_mahalanobis_matches_class_means_and_pooled_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4))
    y = rng.integers(0, 3, size=200)
    x[y == 1] += 3.0
    det = MahalanobisDetector(pool="flatten", shrinkage=0.0).fit(torch.from_numpy(x), torch.from_numpy(y))
    means = np.stack([x[y == c].mean(0) for c in range(3)])
    centred = x - means[y]
    cov = centred.T @ centred / len(x)  # shared (tied) covariance, maximum likelihood
    prec = np.linalg.inv(cov)
    q = rng.normal(size=(7, 4))
    expected = np.min([[(v - m) @ prec @ (v - m) for m in means] for v in q], axis=1)
    assert det.predict(torch.from_numpy(q)).numpy() == pytest.approx(expected, rel=1e-4)
    with pytest.raises(StitchkitError, match="needs class labels"):
        MahalanobisDetector().fit(torch.from_numpy(x))


def test_knn_distance_equals_scikit_learn():
    rng = np.random.default_rng(0)
    bank, q = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(20, 8)).astype(np.float32)
    det = KNNDetector(k=7, pool="flatten", chunk=64).fit(torch.from_numpy(bank))  # chunked search
    normed = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    expected = NearestNeighbors(n_neighbors=7).fit(normed).kneighbors(qn)[0][:, -1]
    assert det.predict(torch.from_numpy(q)).numpy() == pytest.approx(expected, rel=1e-4, abs=1e-5)
    with pytest.raises(StitchkitError, match="at least k"):
        KNNDetector(k=500).fit(torch.from_numpy(bank))
    with pytest.raises(StitchkitError, match="unknown detector"):
        make_detector("odin")


def test_energy_finetuning_lowers_id_energy_and_raises_outlier_energy():
    """Liu et al.'s loss on a small problem: ID energies go below m_in, outlier energies above m_out."""
    torch.manual_seed(0)
    k, n = 4, 256
    centres = 3 * torch.eye(k, 8)
    y = torch.randint(0, k, (n,))
    x_in = centres[y] + 0.5 * torch.randn(n, 8)
    x_out = 0.5 * torch.randn(n, 8) - 3.0  # elsewhere
    model = nn.Linear(8, k)
    with torch.no_grad():
        model.bias.fill_(15.0)  # every energy starts near −15−log 4: too high for ID, too low for outliers
    before_in, before_out = energy_score(model(x_in)).mean().item(), energy_score(model(x_out)).mean().item()
    assert -25 < before_in < -7 and -25 < before_out < -7

    def step(m, batch, device):
        (xi, yi), (xo,) = batch
        loss, parts = energy_finetune_loss(m(xi), yi, m(xo), m_in=-25.0, m_out=-7.0)
        return loss, xi.shape[0] + xo.shape[0], {"ce": float(parts["ce"]) * xi.shape[0]}

    batches = [((x_in[i : i + 32], y[i : i + 32]), (x_out[i : i + 32],)) for i in range(0, n, 32)]
    opt = build_optimizer(model.parameters(), OptimConfig(lr=0.1))
    loop = LoopSettings(epochs=10, device=torch.device("cpu"), progress=False, verbose=False)
    fit(model, batches, opt, loop, step_fn=step)
    with torch.no_grad():
        after_in, after_out = energy_score(model(x_in)).mean().item(), energy_score(model(x_out)).mean().item()
        acc = (model(x_in).argmax(1) == y).float().mean().item()
    assert after_in < before_in - 5 and after_out > before_out + 5
    assert after_in < -20 and after_out > -10 and acc > 0.9


def test_oe_loss_is_cross_entropy_to_uniform():
    logits_out = torch.randn(5, 10)
    loss, parts = energy_finetune_loss(torch.zeros(2, 10), torch.tensor([0, 1]), logits_out, score="OE")
    uniform_ce = -(torch.log_softmax(logits_out, dim=1).mean(dim=1)).mean()
    assert parts["reg"].item() == pytest.approx(uniform_ce.item(), rel=1e-6)
    assert loss.item() == pytest.approx(np.log(10) + 0.5 * uniform_ce.item(), rel=1e-6)
    # uniform outlier logits give the minimum, log K - log K = 0 ... of the KL part: CE = log K
    _, flat = energy_finetune_loss(torch.zeros(1, 10), torch.tensor([0]), torch.zeros(3, 10), score="OE")
    assert flat["reg"].item() == pytest.approx(np.log(10), rel=1e-6)
    with pytest.raises(StitchkitError, match="unknown OOD score"):
        energy_finetune_loss(torch.zeros(1, 2), torch.tensor([0]), torch.zeros(1, 2), score="odin")
