"""The bootstrap statistics core (stitchkit.uncertainty.intervals): every statistic against an
independent computation (explicitly repeated samples, ood_metrics, closed forms), the blocked path
against the whole one, and the coverage of 95% intervals on synthetic data with a known truth."""

import numpy as np
import pytest
from coverage_support import COVERAGE_BAND, SCENARIOS

from stitchkit.errors import StitchkitError
from stitchkit.ood import metrics as ood_module
from stitchkit.ood.metrics import ood_metrics
from stitchkit.uncertainty import intervals
from stitchkit.uncertainty.bootstrap import percentile_interval, resample_counts
from stitchkit.uncertainty.intervals import (
    interval,
    mean_interval,
    mean_samples,
    norm_ratio_interval,
    ood_metric_interval,
    ood_metric_samples,
    ratio_interval,
    ratio_samples,
)

OOD_KEYS = ("auroc", "aupr", "fpr95", "aupr_in", "aupr_out")


def _expanded(values, counts_row):
    """The explicitly repeated samples of one resample: sample i appears counts_row[i] times."""
    return np.repeat(values, counts_row, axis=-1)


def _tied_scores(seed, n=157, m=93, decimals=1):
    rng = np.random.default_rng(seed)
    return rng.normal(-3.0, 1.0, n).round(decimals), rng.normal(-2.3, 1.4, m).round(decimals)


# --------------------------------------------------------------------------------------------------
# means and ratios


def test_mean_samples_equal_the_means_of_the_repeated_samples():
    rng = np.random.default_rng(0)
    hits = (rng.random((3, 4, 60)) < 0.7).astype(np.uint8)  # an (F, E, N) grid of per-image hits
    counts = resample_counts(60, 25, seed=3)
    samples = mean_samples(hits, counts)
    assert samples.shape == (25, 3, 4)
    for b in range(25):
        np.testing.assert_allclose(samples[b], _expanded(hits, counts[b]).mean(axis=-1), rtol=0, atol=1e-15)


def test_ratio_samples_equal_the_ratio_of_sums_of_the_repeated_samples():
    rng = np.random.default_rng(1)
    den = rng.gamma(2.0, 1.0, (2, 5, 40))
    num = den * rng.exponential(0.3, den.shape)
    counts = resample_counts(40, 30, seed=4)
    samples = ratio_samples(num, den, counts)
    assert samples.shape == (30, 2, 5)
    for b in range(30):
        expected = _expanded(num, counts[b]).sum(-1) / _expanded(den, counts[b]).sum(-1)
        np.testing.assert_allclose(samples[b], expected, rtol=1e-13)


def test_unit_weights_give_the_point_estimate_and_intervals_hold_it():
    rng = np.random.default_rng(2)
    hits = rng.random((4, 200)) < 0.6
    np.testing.assert_array_equal(mean_samples(hits, np.ones((1, 200)))[0], hits.mean(-1))
    point, lower, upper, samples = mean_interval(hits, resample_counts(200, 400, seed=0), keep_samples=True)
    np.testing.assert_array_equal(point, hits.mean(-1))
    assert samples.shape == (400, 4) and np.all(lower <= point) and np.all(point <= upper)
    # closed form: the percentile interval of a mean of Bernoulli hits is close to p ± 1.96·sqrt(p(1−p)/n)
    half = 1.96 * np.sqrt(point * (1 - point) / 200)
    np.testing.assert_allclose(upper - lower, 2 * half, rtol=0.2)


def test_ratio_interval_point_is_the_pooled_ratio_and_norm_ratio_is_mean_over_mean():
    rng = np.random.default_rng(3)
    num, den = rng.random((3, 80)), rng.random((3, 80)) + 0.5
    counts = resample_counts(80, 200, seed=1)
    point, lower, upper = ratio_interval(num, den, counts)
    np.testing.assert_allclose(point, num.sum(-1) / den.sum(-1), rtol=1e-15)
    stitched, genuine = rng.gamma(3.0, 2.0, 80), rng.gamma(3.0, 1.0, 80)
    n_point, n_lower, n_upper = norm_ratio_interval(stitched, genuine, counts)
    assert n_point == pytest.approx(stitched.mean() / genuine.mean(), rel=1e-14)
    expected = percentile_interval(
        np.array([_expanded(stitched, c).mean() / _expanded(genuine, c).mean() for c in counts])
    )
    np.testing.assert_allclose((n_lower, n_upper), expected, rtol=1e-12)


def test_ratio_with_a_zero_denominator_is_nan_and_intervals_skip_it():
    num, den = np.array([[1.0, 2.0, 3.0]]), np.array([[0.0, 0.0, 1.0]])
    counts = np.array([[3, 0, 0], [1, 1, 1]])
    samples = ratio_samples(num, den, counts)
    assert np.isnan(samples[0, 0]) and samples[1, 0] == 6.0
    lower, upper = interval(samples)
    assert lower[0] == upper[0] == 6.0


def test_interval_is_the_percentile_interval():
    samples = np.random.default_rng(4).normal(size=(500, 3, 2))
    for got, want in zip(interval(samples, 0.9), percentile_interval(samples, 0.9)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "call",
    [
        lambda: mean_samples(np.ones((2, 5)), np.ones((3, 4))),  # n mismatch
        lambda: mean_samples(np.ones(5), np.ones(5)),  # counts not (B, n)
        lambda: mean_samples(np.ones(5), -np.ones((2, 5))),  # negative weights
        lambda: ratio_samples(np.ones((2, 5)), np.ones((3, 5)), np.ones((1, 5))),  # shapes differ
        lambda: ood_metric_samples(np.ones(4), np.ones(5), np.ones((2, 4))),  # paired needs n == m
        lambda: ood_metric_samples(np.ones(4), np.ones(5), np.ones((2, 4)), np.ones((3, 5))),  # B differs
        lambda: ood_metric_samples(np.r_[1.0, np.nan], np.ones(2), np.ones((1, 2))),
        lambda: ood_metric_samples(np.ones(2), np.ones(2), np.ones((1, 2)), positive="both"),
        lambda: ood_metric_samples(np.ones(2), np.ones(2), np.ones((1, 2)), fpr_rule="nearest"),
        lambda: ood_metric_samples(np.ones(2), np.ones(2), np.ones((1, 2)), tpr=1.5),
    ],
)
def test_mistakes_raise_one_sentence(call):
    with pytest.raises(StitchkitError):
        call()


# --------------------------------------------------------------------------------------------------
# OOD metrics


def test_the_tie_tolerance_is_ood_metrics_own():
    assert intervals.TPR_TIE == ood_module._TIE


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("positive", ["id", "ood"])
@pytest.mark.parametrize("rule", ["closest", "at_least"])
@pytest.mark.parametrize("tpr", [0.95, 0.5])
def test_unit_weights_equal_ood_metrics_with_ties(seed, positive, rule, tpr):
    id_s, ood_s = _tied_scores(seed)
    got = ood_metric_samples(
        id_s, ood_s, np.ones((2, id_s.size)), np.ones((2, ood_s.size)), positive=positive, tpr=tpr, fpr_rule=rule
    )
    want = ood_metrics(id_s, ood_s, positive=positive, tpr=tpr, fpr_rule=rule)
    for key in OOD_KEYS:
        assert got[key].shape == (2,)
        assert got[key][0] == pytest.approx(getattr(want, key), abs=1e-12), key
    assert got["fpr95"][0] == want.fpr95  # the same threshold, the same division: exactly


@pytest.mark.parametrize("positive", ["id", "ood"])
@pytest.mark.parametrize("rule", ["closest", "at_least"])
@pytest.mark.parametrize("tpr", [0.95, 0.3])
def test_integer_counts_equal_ood_metrics_of_the_repeated_samples(positive, rule, tpr):
    id_s, ood_s = _tied_scores(7, n=61, m=47)
    counts_id, counts_ood = resample_counts(61, 12, seed=1), resample_counts(47, 12, seed=2)
    got = ood_metric_samples(id_s, ood_s, counts_id, counts_ood, positive=positive, tpr=tpr, fpr_rule=rule)
    for b in range(12):
        want = ood_metrics(
            _expanded(id_s, counts_id[b]), _expanded(ood_s, counts_ood[b]), positive=positive, tpr=tpr, fpr_rule=rule
        )
        for key in OOD_KEYS:
            assert got[key][b] == pytest.approx(getattr(want, key), abs=1e-12), (b, key)


def test_paired_counts_resample_both_sides_with_the_same_images():
    id_s, ood_s = _tied_scores(8, n=50, m=50)
    counts = resample_counts(50, 10, seed=5)
    paired = ood_metric_samples(id_s, ood_s, counts)
    explicit = ood_metric_samples(id_s, ood_s, counts, counts)
    for key in OOD_KEYS:
        np.testing.assert_array_equal(paired[key], explicit[key])
    want = ood_metrics(_expanded(id_s, counts[3]), _expanded(ood_s, counts[3]))
    assert paired["auroc"][3] == pytest.approx(want.auroc, abs=1e-12)


def test_blocks_of_resamples_equal_one_block(monkeypatch):
    id_s, ood_s = _tied_scores(9, n=120, m=80)
    counts_id, counts_ood = resample_counts(120, 37, seed=1), resample_counts(80, 37, seed=2)
    whole = ood_metric_samples(id_s, ood_s, counts_id, counts_ood, positive="ood")
    monkeypatch.setattr(intervals, "OOD_BLOCK_CELLS", 3 * 150)  # blocks of 3 resamples (≤ 200 groups)
    blocked = ood_metric_samples(id_s, ood_s, counts_id, counts_ood, positive="ood")
    for key in OOD_KEYS:
        np.testing.assert_array_equal(blocked[key], whole[key])


def test_closed_forms_separated_and_identical_scores():
    id_s, ood_s = np.linspace(-30, -20, 40), np.linspace(-5, 0, 30)
    counts_id, counts_ood = resample_counts(40, 20, seed=0), resample_counts(30, 20, seed=1)
    got = ood_metric_samples(id_s, ood_s, counts_id, counts_ood)
    for key, value in (("auroc", 1.0), ("aupr_in", 1.0), ("aupr_out", 1.0), ("fpr95", 0.0)):
        np.testing.assert_array_equal(got[key], value)
    same = ood_metric_samples(np.zeros(10), np.zeros(10), resample_counts(10, 5, seed=0))
    np.testing.assert_array_equal(same["auroc"], 0.5)  # every pair a tie
    np.testing.assert_array_equal(same["fpr95"], 1.0)  # one threshold: everything flagged


def test_ood_metric_interval_points_equal_ood_metrics():
    id_s, ood_s = _tied_scores(10)
    result = ood_metric_interval(
        id_s, ood_s, resample_counts(id_s.size, 300, seed=0), resample_counts(ood_s.size, 300, seed=1), positive="ood"
    )
    want = ood_metrics(id_s, ood_s, positive="ood")
    for key in OOD_KEYS:
        point, lower, upper = result[key]
        assert point == pytest.approx(getattr(want, key), abs=1e-12)
        assert lower <= upper


# --------------------------------------------------------------------------------------------------
# coverage (issue 19 item 6): 200 repetitions, B = 500; a correct 95% interval lands in
# COVERAGE_BAND = [0.91, 0.98] (binomial sd 1.5 points at 200 repetitions; see coverage_support)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_95_percent_intervals_cover_the_truth(scenario):
    result = scenario()
    low, high = COVERAGE_BAND
    assert low <= result.coverage <= high, result.line()
