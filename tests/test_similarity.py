"""Similarity measures (seed spec 1.7; references.md sections 2 and 3).

The tests state the mathematics: the exact checks of references.md section 2, agreement with
independent straightforward numpy/scipy implementations written here from the definitions, and the
declared metadata of every measure (range, symmetry, invariances) checked on random data.
"""

import math

import numpy as np
import pytest
import scipy.linalg as sla
import torch
from scipy.spatial.distance import pdist, squareform

from stitchkit.activations import LowRankBasis, low_rank
from stitchkit.errors import StitchkitError, UnknownNameError
from stitchkit.similarity import (
    INVARIANCES,
    StreamingCKA,
    canonical_correlations,
    compute,
    get_measure,
    list_measures,
    matrix_shape,
    measure_info,
    measure_options,
    paired_matrices,
    pairwise_matrix,
    resolve_policy,
    to_matrix,
)

#: every declared measure computed from arrays (a new one is covered by the generic tests below at once)
ARRAY_MEASURES = list_measures(requires_models=False)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _rng(seed=0):
    return np.random.default_rng(seed)


def _orthogonal(d, rng):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _ill_conditioned(d, rng, cond=1e3):
    """A random invertible matrix with singular values from 1 down to 1/cond."""
    return _orthogonal(d, rng) @ np.diag(np.logspace(0, -np.log10(cond), d)) @ _orthogonal(d, rng)


def _centred(n, d, rng, spectrum=None):
    """A centred n × d matrix with the given singular values (default: distinct, decaying)."""
    spectrum = np.linspace(3.0, 0.5, d) if spectrum is None else np.asarray(spectrum)
    u, _ = np.linalg.qr(rng.standard_normal((n, d)) - 0.0)
    u = u - u.mean(0)
    u, _ = np.linalg.qr(u)  # orthonormal columns, orthogonal to the constant vector
    return (u * spectrum) @ _orthogonal(d, rng)


def _truncate(x, k):
    """Rank-k truncation of a centred matrix (top k singular values kept)."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    return (u[:, :k] * s[:k]) @ vt[:k]


def _related(n, p, q, rng, noise=0.5):
    x = rng.standard_normal((n, p)) + rng.standard_normal(p)
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


# ---------------------------------------------------------------------------------------------------
# Independent reference implementations, straight from the definitions
# ---------------------------------------------------------------------------------------------------


def ref_hsic(k, l):
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def ref_cka_from_grams(k, l):
    return ref_hsic(k, l) / math.sqrt(ref_hsic(k, k) * ref_hsic(l, l))


def ref_linear_cka(x, y):
    return ref_cka_from_grams(x @ x.T, y @ y.T)


def ref_hsic_unbiased(k, l):
    """Song et al. 2012, eq. 5."""
    n = k.shape[0]
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    return (
        np.trace(kt @ lt)
        + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ kt @ lt @ one)
    ) / (n * (n - 3))


def ref_debiased_cka(x, y):
    k, l = x @ x.T, y @ y.T
    return ref_hsic_unbiased(k, l) / math.sqrt(ref_hsic_unbiased(k, k) * ref_hsic_unbiased(l, l))


def ref_rbf_cka(x, y, sigma=0.8):
    def gram(z):
        dist = pdist(z)
        return np.exp(-(squareform(dist) ** 2) / (2 * (sigma * np.median(dist)) ** 2))

    return ref_cka_from_grams(gram(x), gram(y))


def ref_canonical_correlations(x, y):
    """Cosines of the principal angles between the centred column spaces (scipy)."""
    return np.sort(np.cos(sla.subspace_angles(x - x.mean(0), y - y.mean(0))))[::-1]


def ref_svcca(x, y, variance=0.99):
    def reduce(z):
        u, s, _ = np.linalg.svd(z - z.mean(0), full_matrices=False)
        frac = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.argmax(frac >= variance)) + 1
        return u[:, :k] * s[:k]

    return float(np.mean(ref_canonical_correlations(reduce(x), reduce(y))))


def ref_pwcca(x, y):
    """Ding et al.'s recipe (seed spec 1.7 step 5): features × samples, whitening by eigendecomposition."""

    def normalise(z):
        a = z.T - z.T.mean(axis=1, keepdims=True)
        return a / np.linalg.norm(a)

    def inv_sqrt(c):
        lam, v = sla.eigh(c)
        lam = np.clip(lam, 0, None)
        inv = np.where(lam > 0, 1 / np.sqrt(np.where(lam > 0, lam, 1)), 0)
        return (v * inv) @ v.T

    a, b = normalise(x), normalise(y)
    ia, ib = inv_sqrt(a @ a.T), inv_sqrt(b @ b.T)
    u, rho, _ = np.linalg.svd(ia @ (a @ b.T) @ ib, full_matrices=False)
    variates = (u.T @ ia @ a).T
    w = np.abs(variates.T @ a.T).sum(axis=1)
    w = w / w.sum()
    return 1 - w @ rho


def ref_procrustes(x, y):
    a, b = x - x.mean(0), y - y.mean(0)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    r, _ = sla.orthogonal_procrustes(a, b)
    return float(np.linalg.norm(a @ r - b) ** 2)


def ref_dm_residual(x, y):
    xa = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    theta, *_ = np.linalg.lstsq(xa, y, rcond=None)
    return float(np.linalg.norm(xa @ theta - y) ** 2 / np.linalg.norm(y) ** 2)


# ---------------------------------------------------------------------------------------------------
# references.md section 2: exact checks
# ---------------------------------------------------------------------------------------------------


def test_cka_orthogonal_scaling_translation_gives_one():
    rng = _rng(1)
    x = rng.standard_normal((60, 7))
    q = _orthogonal(7, rng)
    cka = get_measure("cka")
    assert cka(x, x @ q) == pytest.approx(1.0, rel=1e-9)
    assert cka(x, 3 * x @ q + 1) == pytest.approx(1.0, rel=1e-9)


def test_cka_not_invariant_to_ill_conditioned_linear_map_but_cca_is():
    rng = _rng(2)
    x = rng.standard_normal((500, 6))
    a = _ill_conditioned(6, rng)
    assert get_measure("cka")(x, x @ a) < 0.99
    assert get_measure("mean_cca")(x, x @ a) == pytest.approx(1.0, rel=1e-6)
    assert canonical_correlations(x, x @ a).numpy() == pytest.approx(np.ones(6), rel=1e-6)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_rank_k_closed_forms(k):
    rng = _rng(3)
    x = _centred(80, 6, rng)
    s = np.linalg.svd(x, compute_uv=False)
    xk = _truncate(x, k)
    cka = get_measure("cka")(x, xk)
    procrustes = get_measure("procrustes")(x, xk)
    assert cka == pytest.approx(math.sqrt(np.sum(s[:k] ** 4) / np.sum(s**4)), rel=1e-6)
    assert procrustes == pytest.approx(2 - 2 * math.sqrt(np.sum(s[:k] ** 2) / np.sum(s**2)), rel=1e-6)
    assert 1 - cka <= procrustes / 2 + 1e-12
    # CCA: k correlations equal to 1 and d − k equal to 0; PWCCA weights come from the first argument.
    assert get_measure("mean_cca")(x, xk) == pytest.approx(k / 6, rel=1e-6)
    assert get_measure("pwcca")(xk, x) == pytest.approx(0.0, abs=1e-9)
    assert get_measure("pwcca")(x, xk) > 0.01  # the deleted directions have ρ = 0 and positive weight


@pytest.mark.parametrize("k", [1, 4])
def test_direct_matching_residual_closed_forms(k):
    rng = _rng(4)
    x = _centred(90, 6, rng)
    mean = rng.standard_normal(6) * 2
    s = np.linalg.svd(x, compute_uv=False)
    dm = get_measure("dm_residual")
    expected = np.sum(s[k:] ** 2) / np.linalg.norm(x + mean) ** 2
    assert dm(_truncate(x, k) + mean, x + mean) == pytest.approx(expected, rel=1e-6)
    assert dm(x + mean, _truncate(x, k) + mean) == pytest.approx(0.0, abs=1e-12)


def test_procrustes_zero_for_rotations_and_range():
    rng = _rng(5)
    x = rng.standard_normal((40, 5))
    proc = get_measure("procrustes")
    assert proc(x, 2 * x @ _orthogonal(5, rng) - 3) == pytest.approx(0.0, abs=1e-9)
    assert proc(x, -x) == pytest.approx(2 - 2 * 1.0, abs=1e-9)  # −I is orthogonal
    for seed in range(5):
        r = _rng(100 + seed)
        v = proc(r.standard_normal((30, 4)), r.standard_normal((30, 9)))
        assert 0.0 <= v <= 2.0


# ---------------------------------------------------------------------------------------------------
# Agreement with the independent implementations
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,p,q", [(40, 5, 3), (30, 50, 8), (25, 60, 70)])
def test_linear_cka_matches_centring_matrix_hsic(n, p, q):
    x, y = _related(n, p, q, _rng(n + p))
    for form in ("auto", "feature", "gram"):
        assert get_measure("cka", form=form)(x, y) == pytest.approx(ref_linear_cka(x, y), rel=1e-9)
        assert get_measure("cka_debiased", form=form)(x, y) == pytest.approx(ref_debiased_cka(x, y), rel=1e-8)


@pytest.mark.parametrize("sigma", [0.8, 0.3])
def test_rbf_cka_matches_reference(sigma):
    x, y = _related(35, 4, 6, _rng(6))
    assert get_measure("rbf_cka", sigma=sigma)(x, y) == pytest.approx(ref_rbf_cka(x, y, sigma), rel=1e-9)


def test_canonical_correlations_and_mean_cca_match_principal_angles():
    x, y = _related(200, 7, 5, _rng(7), noise=3.0)
    rho = canonical_correlations(x, y).numpy()
    assert rho == pytest.approx(ref_canonical_correlations(x, y), abs=1e-10)
    assert get_measure("mean_cca")(x, y) == pytest.approx(float(np.mean(rho)), rel=1e-12)


def test_svcca_matches_reference():
    rng = _rng(8)
    # Decaying spectra so that the 99% cut keeps fewer than all directions.
    x = rng.standard_normal((150, 10)) * np.logspace(0, -2, 10)
    y = x @ rng.standard_normal((10, 8)) * np.logspace(0, -1.5, 8) + 0.05 * rng.standard_normal((150, 8))
    assert get_measure("svcca")(x, y) == pytest.approx(ref_svcca(x, y), rel=1e-9)
    assert get_measure("svcca", variance=0.9)(x, y) == pytest.approx(ref_svcca(x, y, 0.9), rel=1e-9)
    assert get_measure("svcca", n_components=10)(x, y) == pytest.approx(get_measure("mean_cca")(x, y), rel=1e-12)


@pytest.mark.parametrize("p,q", [(6, 6), (8, 5), (4, 9)])
def test_pwcca_matches_dings_whitening_recipe(p, q):
    x, y = _related(300, p, q, _rng(p * q), noise=2.0)
    assert get_measure("pwcca")(x, y) == pytest.approx(ref_pwcca(x, y), rel=1e-8)
    assert get_measure("pwcca")(y, x) == pytest.approx(ref_pwcca(y, x), rel=1e-8)


@pytest.mark.parametrize("n,d", [(50, 6), (10, 30)])
def test_procrustes_matches_scipy_orthogonal_procrustes(n, d):
    rng = _rng(9)
    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d)) + 0.5 * rng.standard_normal((n, d))
    assert get_measure("procrustes")(x, y) == pytest.approx(ref_procrustes(x, y), rel=1e-9)
    # different widths: zero-pad the narrower matrix (an orthogonal map of the padded space)
    z = rng.standard_normal((n, d + 3))
    assert get_measure("procrustes")(x, z) == pytest.approx(ref_procrustes(np.pad(x, ((0, 0), (0, 3))), z), rel=1e-9)


def test_dm_residual_matches_lstsq():
    x, y = _related(70, 5, 4, _rng(10))
    y = y + 3.0
    assert get_measure("dm_residual")(x, y) == pytest.approx(ref_dm_residual(x, y), rel=1e-9)


# ---------------------------------------------------------------------------------------------------
# Declared metadata, checked on random data
# ---------------------------------------------------------------------------------------------------


def _transform(kind, z, rng, *, strong=False):
    d = z.shape[1]
    if kind == "orthogonal":
        return z @ _orthogonal(d, rng)
    if kind == "isotropic_scaling":
        return z * rng.uniform(0.1, 10)
    if kind == "translation":
        return z + 5 * rng.standard_normal(d)
    if kind == "invertible_linear":
        return z @ (_ill_conditioned(d, rng) if strong else rng.standard_normal((d, d)))
    if kind == "permutation":
        return z[:, rng.permutation(d)]
    raise AssertionError(kind)


def _metadata_data(seed):
    rng = _rng(seed)
    x = rng.standard_normal((120, 6)) * np.linspace(2, 0.5, 6) + rng.standard_normal(6)
    y = np.tanh(x @ rng.standard_normal((6, 5))) + 0.3 * rng.standard_normal((120, 5)) + 1.0
    return x, y


#: declared-absent invariances that must be violated on some random case
EXPECTED_VIOLATIONS = {
    "cka": {"invertible_linear"},
    "cka_debiased": {"invertible_linear"},
    "rbf_cka": {"invertible_linear"},
    "mean_cca": set(),
    "svcca": {"invertible_linear"},
    "pwcca": {"orthogonal", "invertible_linear"},
    "procrustes": {"invertible_linear"},
    "dm_residual": {"translation", "invertible_linear"},
}


@pytest.mark.parametrize("name", ARRAY_MEASURES)
def test_declared_invariances_hold_and_absent_ones_fail(name):
    info = measure_info(name)
    m = get_measure(name)
    assert set(info.invariances) | EXPECTED_VIOLATIONS[name] == set(INVARIANCES)
    for kind in INVARIANCES:
        diffs = []
        for seed in range(3):
            x, y = _metadata_data(seed)
            base = m(x, y)
            rng = _rng(1000 + seed)
            strong = kind not in info.invariances
            diffs.append(
                abs(m(_transform(kind, x, rng, strong=strong), _transform(kind, y, rng, strong=strong)) - base)
            )
        if kind in info.invariances:
            assert max(diffs) < 1e-8, (name, kind, diffs)
        else:
            assert max(diffs) > 1e-4, (name, kind, diffs)


def _range_cases():
    rng = _rng(11)
    x, y = _related(60, 5, 4, rng)
    yield x, y
    yield x, x
    yield rng.standard_normal((60, 5)), rng.standard_normal((60, 7))
    yield rng.standard_normal((20, 40)), rng.standard_normal((20, 30))  # features ≥ samples
    yield x, np.abs(y) ** 3


@pytest.mark.parametrize("name", ARRAY_MEASURES)
def test_values_in_declared_range_and_symmetry(name):
    info = measure_info(name)
    m = get_measure(name)
    lo, hi = info.range
    asym = []
    for x, y in _range_cases():
        v, w = m(x, y), m(y, x)
        assert lo <= v <= hi and lo <= w <= hi, (name, v, w)
        asym.append(abs(v - w))
        if info.symmetric:
            assert abs(v - w) < 1e-9, (name, v, w)
    if not info.symmetric:
        assert max(asym) > 1e-3
    # the identical pair is at the "most similar" end
    x = _rng(12).standard_normal((50, 4))
    assert m(x, x) == pytest.approx(hi if info.kind == "similarity" else lo, abs=1e-9)


def test_metadata_fields():
    for name in list_measures():
        info = measure_info(name)
        assert info.name == name and info.kind in ("similarity", "distance") and info.citation and info.description
        assert info.range[0] < info.range[1]
        assert info.requires_models == (name in ("dm_accuracy", "tlm_accuracy"))
    assert set(ARRAY_MEASURES) == set(EXPECTED_VIOLATIONS)  # each array measure's non-invariances are stated here
    assert measure_info("pwcca").kind == "distance" and not measure_info("pwcca").symmetric


# ---------------------------------------------------------------------------------------------------
# Degeneracies (references.md section 2)
# ---------------------------------------------------------------------------------------------------


def test_biased_cka_large_for_unrelated_wide_data_debiased_near_zero():
    rng = _rng(13)
    results = {}
    for d in (10, 1000):
        pairs = [(rng.standard_normal((50, d)), rng.standard_normal((50, d))) for _ in range(6)]
        results[d] = (
            np.mean([get_measure("cka")(x, y) for x, y in pairs]),
            np.mean([get_measure("cka_debiased")(x, y) for x, y in pairs]),
        )
    assert 0.1 < results[10][0] < 0.25  # about 0.17
    assert results[1000][0] > 0.9  # about 0.95
    assert abs(results[10][1]) < 0.05 and abs(results[1000][1]) < 0.05


def test_cca_family_collapses_when_features_reach_samples():
    rng = _rng(14)
    x, y = rng.standard_normal((30, 40)), rng.standard_normal((30, 35))  # unrelated
    assert get_measure("mean_cca")(x, y) == pytest.approx(1.0, abs=1e-9)
    assert get_measure("pwcca")(x, y) == pytest.approx(0.0, abs=1e-9)
    assert canonical_correlations(x, y).numpy() == pytest.approx(np.ones(29), abs=1e-9)
    # the same kind of data with n ≫ d is recognised as unrelated
    assert get_measure("mean_cca")(rng.standard_normal((600, 10)), rng.standard_normal((600, 10))) < 0.2


# ---------------------------------------------------------------------------------------------------
# Activation policy
# ---------------------------------------------------------------------------------------------------


def test_policy_conversions():
    conv = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3, 4, 5)
    tokens = torch.randn(2, 6, 8, dtype=torch.float64)
    flat = to_matrix(conv, "flatten")
    assert flat.shape == (2, 60) and flat[1, 1 * 20 + 2 * 5 + 3] == conv[1, 1, 2, 3]  # channel-major
    pos = to_matrix(conv, "positions")
    assert pos.shape == (2 * 4 * 5, 3) and pos[1 * 20 + 2 * 5 + 3, 2] == conv[1, 2, 2, 3]
    assert torch.equal(to_matrix(conv, "pool"), conv.mean(dim=(2, 3)))
    assert torch.equal(to_matrix(tokens, "positions"), tokens.reshape(12, 8))
    assert torch.equal(to_matrix(tokens, "pool"), tokens.mean(dim=1))
    assert torch.equal(to_matrix(tokens, "cls"), tokens[:, 0])
    assert to_matrix(tokens, "flatten").shape == (2, 48)
    vec = np.ones((4, 3))
    for policy in ("flatten", "positions", "pool", "cls"):
        assert to_matrix(vec, policy).shape == (4, 3)
        assert matrix_shape((4, 3), policy) == (4, 3)
    assert matrix_shape(conv.shape, "positions") == (40, 3) and matrix_shape(tokens.shape, "cls") == (2, 8)


def test_policy_errors():
    conv = torch.randn(2, 3, 4, 4)
    with pytest.raises(StitchkitError, match=r"cls.*\(2, 3, 4, 4\)"):
        to_matrix(conv, "cls")
    with pytest.raises(UnknownNameError, match="known policies: .*positions"):
        to_matrix(conv, "rows")
    with pytest.raises(StitchkitError, match="auto_original"):
        to_matrix(conv, "auto_original")
    with pytest.raises(StitchkitError, match=r"\(2, 3, 1, 1, 1\)"):
        to_matrix(torch.randn(2, 3, 1, 1, 1), "flatten")
    other = torch.randn(2, 5, 2, 2)
    with pytest.raises(StitchkitError, match=r"\(2, 3, 4, 4\).*\(2, 5, 2, 2\)"):
        paired_matrices(conv, other, "positions", "procrustes")
    with pytest.raises(StitchkitError, match="different numbers of samples"):
        paired_matrices(conv, torch.randn(3, 3, 4, 4), "pool", "cka")
    with pytest.raises(StitchkitError, match="no rule"):
        resolve_policy((2, 3, 4, 4), (2, 5, 8), "auto_original", "pwcca")
    with pytest.raises(StitchkitError, match="not computed from activation"):
        resolve_policy((2, 3), (2, 3), "auto_original", "tlm_accuracy")


def test_auto_original_reproduces_the_original():
    conv, conv2, conv3 = (2, 8, 4, 4), (2, 16, 2, 2), (2, 16, 4, 4)
    tok, tok_wide, tok_short = (2, 5, 8), (2, 5, 12), (2, 3, 8)
    assert resolve_policy(conv, conv2, "auto_original", "cka") == "flatten"
    assert resolve_policy(conv, conv, "auto_original", "pwcca") == "positions"
    assert resolve_policy(conv, conv2, "auto_original", "procrustes") == "pool"
    assert resolve_policy(conv, conv3, "auto_original", "procrustes") == "pool"  # same H, W but a different C
    assert resolve_policy(tok, tok, "auto_original", "procrustes") == "positions"
    assert resolve_policy(tok, tok_wide, "auto_original", "pwcca") == "positions"  # the original crashed here
    assert resolve_policy(tok, tok_short, "auto_original", "pwcca") == "pool"
    assert resolve_policy(conv, conv3, "auto_original", "dm_residual") == "positions"
    assert resolve_policy(conv, conv2, "pool", "cka") == "pool"
    assert resolve_policy(conv, (2, 8), "auto_original", "pwcca") == "pool"  # extension: a vector with a map
    x, y = paired_matrices(torch.randn(tok), torch.randn(tok_wide), "auto_original", "pwcca")
    assert x.shape == (10, 8) and y.shape == (10, 12)


# ---------------------------------------------------------------------------------------------------
# compute: policy, low rank, records
# ---------------------------------------------------------------------------------------------------


def test_compute_records_policy_and_matches_manual_conversion():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 3, 4, 4, generator=g), torch.randn(20, 5, 2, 2, generator=g)
    res = compute("cka", x, y)
    assert res.resolved_policy == "flatten" and res.policy == "auto_original"
    assert res.value == pytest.approx(get_measure("cka")(x.reshape(20, -1), y.reshape(20, -1)), rel=1e-12)
    assert res.matrix_shape_x == (20, 48) and res.shape_y == (20, 5, 2, 2)
    res = compute("procrustes", x, y)
    assert res.resolved_policy == "pool" and res.kind == "distance"
    assert res.value == pytest.approx(get_measure("procrustes")(x.mean((2, 3)), y.mean((2, 3))), rel=1e-12)
    res = compute("rbf_cka", x, y, policy="pool", sigma=0.5)
    assert res.options == {"sigma": 0.5, "dtype": "float64"} and res.to_dict()["value"] == res.value


def test_compute_low_rank_modes_and_basis():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 6, 3, 3, generator=g, dtype=torch.float64)
    y = torch.randn(30, 6, 3, 3, generator=g, dtype=torch.float64) + x
    expected = get_measure("pwcca")(to_matrix(low_rank(x, 2), "positions"), to_matrix(y, "positions"))
    fixed = compute("pwcca", x, y, rank_x=2)
    per_batch = compute("pwcca", x, y, rank_x=2, low_rank_mode="per_batch")
    assert fixed.value == pytest.approx(expected, rel=1e-10) and per_batch.value == pytest.approx(expected, rel=1e-10)
    assert fixed.rank_x == 2 and fixed.rank_y is None and per_batch.low_rank_mode == "per_batch"
    basis = LowRankBasis(2).fit(x)
    with_basis = compute("procrustes", x, y, rank_x=basis)
    assert with_basis.value == pytest.approx(compute("procrustes", x, y, rank_x=2).value, rel=1e-8)
    assert with_basis.rank_x == "basis(2)"
    with pytest.raises(StitchkitError, match="fixed basis"):
        compute("procrustes", x, y, rank_x=basis, low_rank_mode="per_batch")
    with pytest.raises(StitchkitError, match="low-rank mode"):
        compute("procrustes", x, y, rank_x=2, low_rank_mode="sometimes")


# ---------------------------------------------------------------------------------------------------
# pairwise matrices and streaming
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cka", "cka_debiased", "pwcca", "procrustes", "dm_residual"])
def test_pairwise_matrix_equals_per_pair(name):
    g = torch.Generator().manual_seed(2)
    base = torch.randn(24, 4, 3, 3, generator=g, dtype=torch.float64)
    acts_a = {
        "conv_small": base,  # flatten: 36 features (feature form for CKA)
        "conv_wide": torch.cat(
            [base, torch.randn(24, 4, 3, 3, generator=g, dtype=torch.float64)], 1
        ),  # 72 > n: Gram form
        "conv_pooled": torch.randn(24, 5, 2, 2, generator=g, dtype=torch.float64) + base[:, :1, :2, :2],
    }
    acts_b = {
        "same_shape": base * 2 + torch.randn(24, 4, 3, 3, generator=g, dtype=torch.float64),
        "vec": base.mean((2, 3)),
    }
    policy = "pool" if name == "dm_residual" else "auto_original"
    mat, rows, cols = pairwise_matrix(name, acts_a, acts_b, policy=policy, rank_a={"conv_small": 2})
    assert rows == list(acts_a) and cols == list(acts_b) and mat.shape == (3, 2)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            rank = 2 if r == "conv_small" else None
            assert mat[i, j] == pytest.approx(
                compute(name, acts_a[r], acts_b[c], policy=policy, rank_x=rank).value, rel=1e-10, abs=1e-12
            )
    mat, rows, cols = pairwise_matrix(name, acts_a, policy="pool")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            assert mat[i, j] == pytest.approx(
                compute(name, acts_a[r], acts_a[c], policy="pool").value, rel=1e-10, abs=1e-12
            )


def test_pairwise_matrix_positions_error_names_layers():
    acts = {"a": torch.randn(5, 2, 4, 4), "b": torch.randn(5, 2, 2, 2)}
    with pytest.raises(StitchkitError, match=r"layers 'a' and 'b'.*\(5, 2, 4, 4\)"):
        pairwise_matrix("procrustes", acts, policy="positions")


def test_streaming_cka_equals_full_batch():
    rng = _rng(15)
    x = rng.standard_normal((100, 7)) * 3 + 100.0  # a large mean: the streamed co-moments must not cancel
    y = np.tanh(x @ rng.standard_normal((7, 4)) / 30) + 0.1 * rng.standard_normal((100, 4)) - 50
    meter = StreamingCKA()
    start = 0
    for size in (7, 13, 1, 29, 50):
        meter.update(x[start : start + size], torch.from_numpy(y[start : start + size]))
        start += size
    assert meter.n == 100 and meter.n_batches == 5
    assert meter.compute() == pytest.approx(get_measure("cka")(x, y), rel=1e-10)
    # conv batches are flattened like the original CKA
    conv = torch.randn(12, 2, 3, 3, dtype=torch.float64)
    conv_meter = StreamingCKA()
    conv_meter.update(conv[:5], conv[:5] ** 2)
    conv_meter.update(conv[5:], conv[5:] ** 2)
    assert conv_meter.compute() == pytest.approx(compute("cka", conv, conv**2).value, rel=1e-10)


def test_streaming_minibatch_unbiased_estimator():
    rng = _rng(16)
    x, y = _related(60, 5, 4, rng)
    meter = StreamingCKA(estimator="minibatch_unbiased")
    batches = [(x[i : i + 20], y[i : i + 20]) for i in range(0, 60, 20)]
    for xb, yb in batches:
        meter.update(xb, yb)
    hs = np.array(
        [[ref_hsic_unbiased(a @ a.T, b @ b.T) for a, b in ((xb, yb), (xb, xb), (yb, yb))] for xb, yb in batches]
    ).mean(0)
    assert meter.compute() == pytest.approx(hs[0] / math.sqrt(hs[1] * hs[2]), rel=1e-9)
    with pytest.raises(StitchkitError, match="at least 4"):
        meter.update(x[:3], y[:3])
    with pytest.raises(StitchkitError, match="no batches"):
        StreamingCKA().compute()


# ---------------------------------------------------------------------------------------------------
# Registry, options, errors, inputs and devices
# ---------------------------------------------------------------------------------------------------


def test_registry_and_option_errors():
    with pytest.raises(UnknownNameError, match="known measures: .*cka.*procrustes"):
        get_measure("cca")
    with pytest.raises(StitchkitError, match="no option 'bandwidth'.*sigma"):
        get_measure("rbf_cka", bandwidth=2)
    with pytest.raises(StitchkitError, match="form must be"):
        get_measure("cka", form="kernel")
    assert measure_options("svcca") == {"variance": 0.99, "n_components": None, "rcond": None, "dtype": torch.float64}
    m = get_measure("CKA")
    assert get_measure(m) is m
    for name in ("dm_accuracy", "tlm_accuracy"):
        with pytest.raises(StitchkitError, match="stitchkit stitch"):
            get_measure(name)(np.ones((4, 2)), np.ones((4, 2)))


def test_input_errors():
    cka = get_measure("cka")
    with pytest.raises(StitchkitError, match=r"\(4, 2, 3, 3\).*to_matrix"):
        cka(np.ones((4, 2, 3, 3)), np.ones((4, 5)))
    with pytest.raises(StitchkitError, match=r"X \(4, 2\) and Y \(5, 2\)"):
        cka(np.ones((4, 2)), np.ones((5, 2)))
    with pytest.raises(StitchkitError, match="NaN"):
        cka(np.full((4, 2), np.nan), np.ones((4, 2)))
    with pytest.raises(StitchkitError, match="rows are all equal"):
        get_measure("procrustes")(np.ones((4, 2)), np.random.default_rng(0).standard_normal((4, 2)))
    with pytest.raises(StitchkitError, match="at least 4"):
        get_measure("cka_debiased")(np.eye(3), np.eye(3))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_inputs_devices_and_float32(device):
    x, y = _related(64, 6, 5, _rng(17))
    xt, yt = torch.from_numpy(x).float().to(device), torch.from_numpy(y).float().to(device)
    for name in ARRAY_MEASURES:
        ref = get_measure(name)(x.astype(np.float32), y.astype(np.float32))
        assert get_measure(name)(xt, yt) == pytest.approx(ref, rel=1e-9, abs=1e-12)
        assert get_measure(name, dtype="float32")(xt, yt) == pytest.approx(ref, rel=1e-3, abs=1e-4)
    mat, _, _ = pairwise_matrix("cka", {"x": xt}, {"y": yt})
    assert mat[0, 0] == pytest.approx(get_measure("cka")(x.astype(np.float32), y.astype(np.float32)), rel=1e-9)
