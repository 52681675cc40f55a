"""Direct matching (spec 1.3.1; references.md section 2): streamed least squares vs numpy lstsq and
torch.linalg.pinv, residual closed forms, conv layout, and the residual meters."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stitchkit.errors import StitchkitError
from stitchkit.stitching import (
    LeastSquaresAccumulator,
    ResidualMeter,
    direct_match,
    fit_affine,
    make_stitching_layer,
    relative_residual,
)

f64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _lstsq(x: torch.Tensor, y: torch.Tensor):
    """Reference: numpy least squares of [X, 1]·Θ = Y, split into (W (q, p), b (q,))."""
    xa = np.concatenate([x.numpy(), np.ones((x.shape[0], 1))], axis=1)
    theta, *_ = np.linalg.lstsq(xa, y.numpy(), rcond=None)
    return torch.from_numpy(theta[:-1].T.copy()), torch.from_numpy(theta[-1].copy())


def _pinv_solution(x: torch.Tensor, y: torch.Tensor):
    """Reference: the minimum-norm solution pinv([X, 1]) · Y."""
    theta = torch.linalg.pinv(torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], 1)) @ y
    return theta[:-1].T, theta[-1]


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _streamed(x, y, chunks):
    acc = LeastSquaresAccumulator(x.shape[1], y.shape[1])
    for xs, ys in zip(x.split(chunks), y.split(chunks)):
        acc.update(xs, ys)
    return acc


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_streamed_fit_equals_numpy_lstsq_and_one_batch_fit(offset):
    g = _gen(1)
    x = torch.randn(300, 7, generator=g, dtype=f64) * torch.linspace(0.1, 3, 7, dtype=f64) + offset
    y = x @ torch.randn(7, 4, generator=g, dtype=f64) + torch.randn(300, 4, generator=g, dtype=f64) + 2.0
    w_ref, b_ref = _lstsq(x, y)
    acc = _streamed(x, y, [50, 1, 120, 129])
    w, b = acc.solve()
    assert _rel(w, w_ref) < 1e-6 and _rel(b, b_ref) < 1e-6
    w1, b1 = fit_affine(x, y)
    assert _rel(w, w1) < 1e-9 and _rel(b, b1) < 1e-9
    assert acc.n == 300 and acc.effective_rank() == 7


@pytest.mark.parametrize(
    "case", ["duplicate_columns", "low_rank_with_offset", "constant_column", "more_features_than_rows"]
)
def test_rank_deficient_fit_equals_pinv_minimum_norm_solution(case):
    g = _gen(2)
    if case == "duplicate_columns":
        base = torch.randn(200, 5, generator=g, dtype=f64)
        x = torch.cat([base, base[:, :2], 2 * base[:, 3:4]], 1)
    elif case == "low_rank_with_offset":
        # rank 3 < p = 8, with a mean that has a component in the null space of the centred X
        x = torch.randn(200, 3, generator=g, dtype=f64) @ torch.randn(3, 8, generator=g, dtype=f64)
        x = x + torch.randn(8, generator=g, dtype=f64) * 4
    elif case == "constant_column":
        x = torch.randn(200, 6, generator=g, dtype=f64)
        x[:, 2] = 3.0
    else:
        x = torch.randn(10, 20, generator=g, dtype=f64) + 1.0
    y = torch.randn(x.shape[0], 4, generator=g, dtype=f64) + x[:, :4] - 0.5
    w_ref, b_ref = _pinv_solution(x, y)
    w, b = _streamed(x, y, [x.shape[0] // 3, x.shape[0] - x.shape[0] // 3]).solve()
    assert _rel(w, w_ref) < 1e-5, case
    assert _rel(b, b_ref) < 1e-5, case
    # a least-squares solution too: same residual as pinv's
    assert relative_residual(x @ w.T + b, y) == pytest.approx(relative_residual(x @ w_ref.T + b_ref, y), rel=1e-9)


def test_centred_min_norm_is_not_the_augmented_min_norm():
    # Documents why the bias correction exists: with a null direction that overlaps the mean,
    # the plain centred pseudo-inverse differs from pinv([X, 1])·Y.
    g = _gen(3)
    x = torch.randn(100, 4, generator=g, dtype=f64)
    x[:, 3] = 5.0
    y = torch.randn(100, 2, generator=g, dtype=f64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    w_centred = (torch.linalg.pinv(xc) @ yc).T
    w_ref, _ = _pinv_solution(x, y)
    w, _ = fit_affine(x, y)
    assert _rel(w_centred, w_ref) > 1e-3
    assert _rel(w, w_ref) < 1e-6


def test_residual_from_statistics_equals_direct_residual():
    g = _gen(4)
    x = torch.randn(250, 6, generator=g, dtype=f64) + 3
    y = torch.randn(250, 5, generator=g, dtype=f64) * 2 - 1
    acc = _streamed(x, y, [100, 100, 50])
    for w, b in [acc.solve(), (torch.randn(5, 6, generator=g, dtype=f64), torch.randn(5, generator=g, dtype=f64))]:
        direct = float(((x @ w.T + b - y) ** 2).sum() / (y**2).sum())
        assert acc.residual(w, b) == pytest.approx(direct, rel=1e-9)
    # float32 weights are accepted (the residual of an installed map)
    w, b = acc.solve()
    direct = float(((x @ w.float().double().T + b.float().double() - y) ** 2).sum() / (y**2).sum())
    assert acc.residual(w.float(), b.float()) == pytest.approx(direct, rel=1e-9)


def _centred_low_rank_problem(k: int, seed: int = 5):
    g = _gen(seed)
    n, d = 120, 10
    x = torch.randn(n, d, generator=g, dtype=f64) @ torch.randn(d, d, generator=g, dtype=f64)
    x = x - x.mean(0)
    mean = torch.randn(d, generator=g, dtype=f64) * 3
    u, s, vt = np.linalg.svd(x.numpy(), full_matrices=False)
    x_k = torch.from_numpy((u[:, :k] * s[:k]) @ vt[:k])
    return x, x_k, mean, s


@pytest.mark.parametrize("k", [1, 4, 9])
def test_residual_closed_form_rank_k_source_to_full_target(k):
    # references.md section 2: residual = Σ_{i>k} s_i² / ‖X + mean‖²_F
    x, x_k, mean, s = _centred_low_rank_problem(k)
    target = x + mean
    acc = LeastSquaresAccumulator(10, 10)
    acc.update(x_k + mean, target)
    w, b = acc.solve()
    expected = float((s[k:] ** 2).sum() / (target**2).sum())
    assert acc.residual(w, b) == pytest.approx(expected, rel=1e-6)
    assert relative_residual((x_k + mean) @ w.T + b, target) == pytest.approx(expected, rel=1e-6)
    assert acc.effective_rank() == k


@pytest.mark.parametrize("k", [1, 4])
def test_full_source_to_rank_k_target_has_zero_residual(k):
    x, x_k, mean, _ = _centred_low_rank_problem(k)
    w, b = fit_affine(x + mean, x_k + mean)
    assert relative_residual((x + mean) @ w.T + b, x_k + mean) < 1e-12


def test_conv_layout_recovers_a_1x1_conv_exactly():
    g = _gen(6)
    x = torch.randn(4, 5, 6, 7, generator=g, dtype=f64)
    weight = torch.randn(3, 5, generator=g, dtype=f64)
    bias = torch.randn(3, generator=g, dtype=f64)
    y = F.conv2d(x, weight[:, :, None, None], bias)
    w, b = fit_affine(x, y)
    assert _rel(w, weight) < 1e-9 and _rel(b, bias) < 1e-9
    layer = make_stitching_layer("c2c", (5, 6, 7), (3, 6, 7)).double()
    layer.set_affine(w, b)
    assert relative_residual(layer(x), y) < 1e-20
    torch.testing.assert_close(layer(x), y)


def test_direct_match_fits_rc2c_pre_on_the_resized_source_over_several_batches():
    g = _gen(7)
    xs = [torch.randn(3, 4, 8, 8, generator=g) for _ in range(3)]
    truth = make_stitching_layer("rc2c_pre", (4, 8, 8), (6, 4, 4))
    with torch.no_grad():
        ys = [truth(x) for x in xs]
    layer = make_stitching_layer("rc2c_pre", (4, 8, 8), (6, 4, 4), init="pinv")
    result = direct_match(layer, zip(xs, ys))
    assert result.n_rows == 3 * 3 * 4 * 4 and result.rank == 4
    assert result.residual < 1e-10
    torch.testing.assert_close(layer.affine()[0], truth.affine()[0], rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert relative_residual(layer(xs[0]), ys[0]) < 1e-10


def test_direct_match_same_layer_eye_stitch_is_exact():
    # references.md section 2: a stitch from a layer to itself has residual < 1e-6
    x = torch.randn(5, 9, 12)
    layer = make_stitching_layer("t2t", (9, 12), (9, 12), init="pinv")
    result = direct_match(layer, [(x, x)])
    assert result.residual < 1e-6
    torch.testing.assert_close(result.weight, torch.eye(12), atol=1e-5, rtol=0)


def test_direct_match_c2t_with_cls_target_fits_the_patch_tokens():
    g = _gen(8)
    x = torch.randn(6, 3, 2, 2, generator=g)
    truth = make_stitching_layer("c2t", (3, 2, 2), (5, 4), c2t_cls="learn")
    with torch.no_grad():
        y = truth(x)
    y[:, 0] = 7.0  # an arbitrary end-model CLS token does not enter the fit
    layer = make_stitching_layer("c2t", (3, 2, 2), (5, 4), c2t_cls="learn", init="pinv")
    result = direct_match(layer, [(x, y)])
    assert result.n_rows == 6 * 4 and result.residual < 1e-10
    torch.testing.assert_close(layer.affine()[0], truth.affine()[0], rtol=1e-4, atol=1e-5)


def test_row_count_mismatch_names_both_shapes():
    with pytest.raises(StitchkitError, match=r"\(2, 3, 4, 4\).*\(2, 3, 2, 2\)"):
        fit_affine(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2))
    with pytest.raises(StitchkitError, match=r"\(2, 8\).*\(3, 4\)"):
        LeastSquaresAccumulator(8, 4).update(torch.randn(2, 8), torch.randn(3, 4))
    with pytest.raises(StitchkitError, match=r"\(2, 7\)"):
        LeastSquaresAccumulator(8, 4).update(torch.randn(2, 7), torch.randn(2, 4))
    with pytest.raises(StitchkitError, match="at least one row"):
        LeastSquaresAccumulator(8, 4).solve()


def test_float32_inputs_are_accumulated_in_float64():
    g = _gen(9)
    x = torch.randn(500, 6, generator=g) + 10
    y = x @ torch.randn(6, 3, generator=g) + 1
    w, b = fit_affine(x, y)
    assert w.dtype == f64
    w_ref, b_ref = _lstsq(x.double(), y.double())
    assert _rel(w, w_ref) < 1e-6 and _rel(b, b_ref) < 1e-6


def test_residual_meter_pooled_and_batch_mean_by_hand():
    meter = ResidualMeter()
    # batch 1: error 1, target norm² 2 -> 0.5 ; batch 2: error 0, target norm² 8 -> 0
    assert meter.update(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])) == pytest.approx(0.5)
    assert meter.update(torch.tensor([2.0, 2.0]), torch.tensor([2.0, 2.0])) == 0.0
    assert meter.pooled == pytest.approx(1 / 10)
    assert meter.batch_mean == pytest.approx(0.25)
    assert meter.n_batches == 2
    assert relative_residual(
        torch.tensor([[1.0, 0.0], [2.0, 2.0]]), torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    ) == pytest.approx(0.1)
    with pytest.raises(StitchkitError):
        _ = ResidualMeter().pooled
    with pytest.raises(StitchkitError, match="shape"):
        relative_residual(torch.zeros(2), torch.ones(3))
    with pytest.raises(StitchkitError, match="zero"):
        relative_residual(torch.ones(2), torch.zeros(2))
