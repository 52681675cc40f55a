"""Activation extraction: one pass, only the needed prefix, memory or memmap, cached by content."""

import numpy as np
import pytest
import torch

from stitchkit.activations import (
    ActivationCache,
    ExtractionSettings,
    LowRankBasis,
    extract_activations,
    low_rank,
    model_fingerprint,
    sample_subset,
)
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.layers import layered


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=3, in_channels=1, input_size=12, width=4).eval()
    x = torch.rand(10, 1, 12, 12)
    data = torch.utils.data.TensorDataset(x, torch.arange(10) % 3)
    return model, x, data


def test_extraction_matches_the_prefix_and_runs_one_pass(setup, tmp_path):
    model, x, data = setup
    calls = []
    model.layer1[0].register_forward_hook(lambda *a: calls.append(1))
    acts = extract_activations(model, ["layer1.0", "layer2.1"], data, settings=ExtractionSettings(batch_size=4))
    assert len(calls) == 3  # one pass over 3 batches for both layers
    with torch.no_grad():
        torch.testing.assert_close(acts["layer2.1"], layered(model).prefix("layer2.1")(x))
    assert acts.labels.tolist() == (torch.arange(10) % 3).tolist()
    on_disk = extract_activations(
        model, ["layer1.0", "layer2.1"], data, out_dir=tmp_path, settings=ExtractionSettings(batch_size=4)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer1.0.npy", "layer2.1.npy"]
    torch.testing.assert_close(on_disk["layer1.0"], acts["layer1.0"])


def test_cache_extracts_only_missing_layers(setup, tmp_path):
    model, _, data = setup
    cache = ActivationCache(tmp_path)
    first = cache.get(model, ["layer1.0"], data, "toy/test")
    calls = []
    model.layer1[0].register_forward_hook(lambda *a: calls.append(1))
    again = cache.get(model, ["layer1.0"], data, "toy/test")
    assert not calls
    torch.testing.assert_close(first["layer1.0"], again["layer1.0"])
    cache.get(model, ["layer1.0", "layer3.0"], data, "toy/test")
    assert calls  # layer3.0 needed a pass


def test_fingerprint_follows_the_weights_not_the_object(setup):
    model, _, _ = setup
    clone = get_model("resnet18", num_classes=3, in_channels=1, input_size=12, width=4)
    clone.load_state_dict(model.state_dict())
    assert model_fingerprint(model) == model_fingerprint(clone)
    with torch.no_grad():
        clone.fc.bias += 1
    assert model_fingerprint(model) != model_fingerprint(clone)


def test_sample_subset(setup):
    _, _, data = setup
    assert [int(i) for i in sample_subset(data, 4).indices] == [0, 1, 2, 3]
    a, b = sample_subset(data, 4, seed=1), sample_subset(data, 4, seed=1)
    assert a.indices == b.indices
    with pytest.raises(StitchkitError):
        sample_subset(data, 0)


@pytest.mark.parametrize("shape", [(40, 7), (6, 5, 3, 3), (3, 9, 4), (5, 12)])  # (5, 12): fewer rows than features
def test_low_rank_equals_numpys_truncated_svd(shape):
    # the per-tensor truncation (one eigendecomposition of the scatter matrix) against numpy's SVD of the
    # centred rows, in float32 and float64; several ranks from one decomposition agree with each call
    from stitchkit.activations import principal_directions, to_rows, truncate

    torch.manual_seed(1)
    for dtype in (torch.float32, torch.float64):
        x = (torch.randn(*shape) * torch.linspace(0.2, 3.0, shape[1]).view(1, -1, *[1] * (len(shape) - 2)) + 1.5).to(
            dtype
        )
        rows, restore = to_rows(x)
        r = rows.double().numpy()
        u, sv, vt = np.linalg.svd(r - r.mean(0), full_matrices=False)
        mean, directions = principal_directions(x)
        for rank in (1, 3):
            expected = restore(torch.from_numpy((u[:, :rank] * sv[:rank]) @ vt[:rank] + r.mean(0)))
            tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(low_rank(x, rank).double(), expected.double(), **tol)
            torch.testing.assert_close(truncate(x, mean, directions, rank), low_rank(x, rank))
            assert low_rank(x, rank).dtype == dtype


def test_low_rank_closed_forms():
    torch.manual_seed(0)
    x = torch.randn(50, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64) + 3.0
    approx = low_rank(x, 2)
    centred = x - x.mean(0)
    s = torch.linalg.svdvals(centred)
    residual = approx - x
    assert torch.linalg.matrix_rank(approx - approx.mean(0)) == 2
    assert residual.pow(2).sum().item() == pytest.approx(s[2:].pow(2).sum().item(), rel=1e-9)
    assert low_rank(x, 6) is x and low_rank(x, None) is x
    basis = LowRankBasis(2).fit(x)
    torch.testing.assert_close(basis(x), approx)  # fitted on the same set, the fixed basis is the same map
    # conv layout: rows are positions, columns channels; a fixed basis applies identically to any batch
    maps = torch.randn(4, 5, 3, 3, dtype=torch.float64)
    b = LowRankBasis(2).fit(maps)
    torch.testing.assert_close(b(maps[:2]), b(maps)[:2])
    with pytest.raises(StitchkitError):
        LowRankBasis(0)
