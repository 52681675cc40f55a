"""Similarity indices' bootstrap intervals and permutation null (stitchkit.uncertainty.similarity):
the batched paths against explicit recomputation on resampled / permuted rows, uniform p-values under
the null, tiny ones for identical and rotated representations, intervals invariant where the index is."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from stitchkit.errors import StitchkitError
from stitchkit.similarity import get_measure
from stitchkit.uncertainty.bootstrap import resample_counts
from stitchkit.uncertainty.similarity import (
    UncertaintyPlan,
    bootstrap_values,
    index_uncertainty,
    null_values,
    row_permutations,
    row_weights,
)

BATCHED = ["cka", "cka_debiased", "mean_cca", "svcca", "pwcca", "procrustes"]


def related(n=50, p=6, q=9, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    y = x[:, :4] @ rng.normal(size=(4, q)) + 0.7 * rng.normal(size=(n, q))
    return torch.tensor(x), torch.tensor(y)


def rotation(d, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return torch.tensor(q)


def batched(name, x, y, plan, images=None):
    m = get_measure(name)
    pa, pb = m.prepare(x), m.prepare(y)
    rows = x.shape[0]
    images = images or rows
    w = torch.as_tensor(row_weights(plan.counts(images), rows), dtype=torch.float64)
    perms = torch.as_tensor(row_permutations(plan.permutations_of(images), rows))
    null = null_values(m, pa, pb, x, y, perms).numpy() if plan.permutations else None
    return m, bootstrap_values(m, pa, pb, x, y, w).numpy(), null, w, perms


@pytest.mark.parametrize("name", BATCHED)
def test_batched_bootstrap_and_null_equal_explicit_recomputation(name):
    x, y = related()
    plan = UncertaintyPlan(bootstrap=25, permutations=20, seed=4)
    m, boot, null, w, perms = batched(name, x, y, plan)
    rows = torch.arange(x.shape[0])
    explicit = [m(x[torch.repeat_interleave(rows, wb.long())], y[torch.repeat_interleave(rows, wb.long())]) for wb in w]
    if name != "cka_debiased":  # its resamples count copies as the diagonal (tested below)
        np.testing.assert_allclose(boot, explicit, atol=1e-10)
    np.testing.assert_allclose(null, [m(x, y[p]) for p in perms], atol=1e-10)


def test_cka_bootstrap_from_both_prepared_forms_is_the_same():
    x, y = related(n=30, p=40, q=8)  # X prepared as a Gram matrix (p > n), Y in the feature form
    plan = UncertaintyPlan(bootstrap=10, permutations=10)
    _, boot, null, _, _ = batched("cka", x, y, plan)
    g = get_measure("cka", form="gram")
    w = torch.as_tensor(row_weights(plan.counts(30), 30), dtype=torch.float64)
    perms = torch.as_tensor(row_permutations(plan.permutations_of(30), 30))
    np.testing.assert_allclose(boot, bootstrap_values(g, g.prepare(x), g.prepare(y), x, y, w).numpy(), atol=1e-12)
    np.testing.assert_allclose(null, null_values(g, g.prepare(x), g.prepare(y), x, y, perms).numpy(), atol=1e-12)
    f = get_measure("cka", form="feature")  # the narrow-layer null (feature form) against the Gram one
    np.testing.assert_allclose(
        null_values(f, f.prepare(x[:, :5]), f.prepare(y), x[:, :5], y, perms).numpy(),
        null_values(g, g.prepare(x[:, :5]), g.prepare(y), x[:, :5], y, perms).numpy(),
        atol=1e-12,
    )


def song_hsic(k, l):
    """Song et al. 2012 eq. 5 on Gram matrices with zero diagonals (written out, not u_centre)."""
    n = k.shape[0]
    one = np.ones(n)
    return (
        np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ k @ l @ one
    ) / (n * (n - 3))


def test_debiased_cka_resamples_count_copies_as_the_diagonal():
    x, y = related(n=30)
    plan = UncertaintyPlan(bootstrap=12)
    _, boot, _, w, _ = batched("cka_debiased", x, y, plan)
    for b, wb in zip(boot, w.long().numpy()):
        idx = np.repeat(np.arange(30), wb)
        # the rows of the whole sample's centred data (zeroed copies make the estimator depend slightly on
        # the centring, so it is fixed: the whole sample's)
        xb, yb = (x.numpy() - x.numpy().mean(0))[idx], (y.numpy() - y.numpy().mean(0))[idx]
        same = idx[:, None] == idx[None, :]  # the diagonal and every pair of copies of one image
        k, l = np.where(same, 0, xb @ xb.T), np.where(same, 0, yb @ yb.T)
        assert b == pytest.approx(song_hsic(k, l) / math.sqrt(song_hsic(k, k) * song_hsic(l, l)), abs=1e-10)


def test_debiased_cka_resamples_stay_centred_on_unrelated_wide_data():
    rng = np.random.default_rng(2)
    x, y = torch.tensor(rng.normal(size=(40, 400))), torch.tensor(rng.normal(size=(40, 400)))
    value, sure = index_uncertainty(get_measure("cka_debiased"), x, y, UncertaintyPlan(bootstrap=200))
    assert abs(value) < 0.05 and sure.lower < value < sure.upper and abs(sure.lower + sure.upper) / 2 < 0.05


def test_rbf_cka_resamples_the_kernel_at_the_whole_samples_bandwidth():
    x, y = related(n=25)
    plan = UncertaintyPlan(bootstrap=8)
    m, boot, _, w, _ = batched("rbf_cka", x, y, plan)
    kx, ky = m.prepare(x).gram.numpy(), m.prepare(y).gram.numpy()  # centred kernels of the whole sample
    for b, wb in zip(boot, w.long().numpy()):
        idx = np.repeat(np.arange(25), wb)
        h = np.eye(25) - 1 / 25
        kb, lb = h @ kx[np.ix_(idx, idx)] @ h, h @ ky[np.ix_(idx, idx)] @ h
        assert b == pytest.approx((kb * lb).sum() / math.sqrt((kb * kb).sum() * (lb * lb).sum()), abs=1e-10)


def test_resamples_draw_whole_images_under_the_positions_policy():
    counts = resample_counts(4, 3, 0)
    w = row_weights(counts, 12)  # 3 rows (positions) per image
    np.testing.assert_array_equal(w, np.repeat(counts, 3, axis=1))
    perms = row_permutations(np.array([[2, 0, 3, 1]]), 8)
    np.testing.assert_array_equal(perms[0], [4, 5, 0, 1, 6, 7, 2, 3])


@pytest.mark.parametrize("name", ["cka", "cka_debiased", "procrustes", "pwcca"])
def test_permutation_p_values_are_uniform_under_the_null(name):
    rng = np.random.default_rng(7)
    m, plan = get_measure(name), UncertaintyPlan(permutations=99, seed=0)
    p_values = []
    for _ in range(150):
        x, y = torch.tensor(rng.normal(size=(30, 4))), torch.tensor(rng.normal(size=(30, 5)))
        plan = UncertaintyPlan(permutations=99, seed=int(rng.integers(1 << 30)))
        p_values.append(index_uncertainty(m, x, y, plan)[1].p_value)
    # p-values on the grid k/100 are uniform there; the KS statistic against U(0, 1) at 150 draws stays
    # below its 1% critical value 1.63/sqrt(150) = 0.133 (plus the grid's 0.01)
    assert stats.kstest(p_values, "uniform").statistic < 0.133 + 0.01


@pytest.mark.parametrize("name", ["cka", "cka_debiased", "rbf_cka", "procrustes", "mean_cca", "svcca", "pwcca"])
def test_identical_and_rotated_representations_get_the_smallest_p_value(name):
    x, _ = related(n=40, p=5)
    plan = UncertaintyPlan(permutations=49)
    for y in (x, x @ rotation(5)):
        value, sure = index_uncertainty(get_measure(name), x, y, plan)
        assert sure.p_value == pytest.approx(1 / 50)
        assert sure.calibrated == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["cka", "cka_debiased", "procrustes", "mean_cca", "svcca", "pwcca"])
def test_intervals_are_invariant_where_the_index_is(name):
    x, y = related()
    m = get_measure(name)
    plan = UncertaintyPlan(bootstrap=40, permutations=30, seed=9)
    _, base = index_uncertainty(m, x, y, plan)
    changes = [lambda a: 3.7 * a] + ([lambda a: a @ rotation(a.shape[1])] if "orthogonal" in m.info.invariances else [])
    for change in changes:
        for xs, ys in ((change(x), y), (x, change(y))):
            _, other = index_uncertainty(m, xs, ys, plan)
            for field in ("lower", "upper", "p_value", "null_mean"):
                assert getattr(other, field) == pytest.approx(getattr(base, field), abs=1e-9), field


def test_same_seed_same_numbers_and_options_are_checked():
    x, y = related()
    plan = dict(bootstrap=20, permutations=10, seed=3)
    assert index_uncertainty(get_measure("cka"), x, y, UncertaintyPlan(**plan)) == index_uncertainty(
        get_measure("cka"), x, y, UncertaintyPlan(**plan)
    )
    with pytest.raises(StitchkitError, match="bootstrap"):
        UncertaintyPlan(bootstrap=-1)
    with pytest.raises(StitchkitError, match="level"):
        UncertaintyPlan(bootstrap=5, level=1.5)


def test_compare_models_carries_intervals_and_p_values():
    from stitch_support import resnet

    from stitchkit.data import get_dataset
    from stitchkit.similarity import SimilaritySettings, compare_models

    data = get_dataset("digits", "test")
    a, b = resnet(0), resnet(1)
    kw = dict(n_samples=24, all_pairs=True, device="cpu", measures=["cka", "procrustes"])
    plain = compare_models(a, b, ["layer1.0", "layer4.1"], ["layer1.0", "layer4.1"], data, SimilaritySettings(**kw))
    sure = compare_models(
        a,
        b,
        ["layer1.0", "layer4.1"],
        ["layer1.0", "layer4.1"],
        data,
        SimilaritySettings(bootstrap=20, permutations=9, **kw),
    )
    assert "uncertainty" not in plain.results[0].to_dict() and not plain.matrix("cka").has_interval
    for measure in ("cka", "procrustes"):
        matrix = sure.matrix(measure)
        np.testing.assert_array_equal(matrix.to_numpy(), plain.matrix(measure).to_numpy())
        lower, upper = matrix.ci()
        assert matrix.has_interval and np.all(lower <= upper) and np.all(np.array(matrix.p_value) >= 0.1 - 1e-12)
        assert (
            matrix.interval["resamples"] == 20 and matrix.interval["permutations"] == 9 and matrix.interval["seed"] == 0
        )
    assert set(sure.csv_columns()) >= {"lower", "upper", "p_value", "calibrated"}


@pytest.mark.parametrize("name", ["mean_cca", "pwcca"])
def test_a_side_shared_by_pairs_of_other_widths_gives_what_a_fresh_one_gives(name):
    """The CCA family's resampled whitenings are made once per side and reused by every pair (of any partner)."""
    from stitchkit.uncertainty.similarity import resampling_state

    x, y = related(n=40, p=6, q=9)
    z = torch.tensor(np.random.default_rng(3).normal(size=(40, 3)))
    m = get_measure(name)
    plan = UncertaintyPlan(bootstrap=30, seed=2)
    w = plan.weights(40, 40, torch.float64, "cpu")
    shared = resampling_state(m, m.prepare(x), x)
    for other in (y, z, y):
        fresh = bootstrap_values(m, m.prepare(x), m.prepare(other), x, other, w).numpy()
        reused = bootstrap_values(m, m.prepare(x), m.prepare(other), x, other, w, shared, None).numpy()
        np.testing.assert_allclose(reused, fresh, atol=1e-12)
