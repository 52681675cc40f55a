"""How sure the sensitivity and specificity tests are (issue 19, claim C6): the indices recomputed on
resamples of the images (against explicit recomputation on the repeated images), dm_residual with its
fit held fixed (against an independent least-squares fit), the probe cache's per-image hits, and the
tests' rank statistics on each resample against a direct recomputation from the resampled images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps

from stitchkit.errors import StitchkitError
from stitchkit.probing.cache import ProbeCache
from stitchkit.probing.probe import ProbeConfig
from stitchkit.sensitivity.comparisons import sensitivity_comparisons
from stitchkit.sensitivity.per_sample import fixed_parts, resampled_agreements, sample_arrays
from stitchkit.similarity import get_measure
from stitchkit.similarity.pairs import Rep, RepresentationBank
from stitchkit.uncertainty.bootstrap import resample_counts


def repeated(counts_row):
    return np.repeat(np.arange(counts_row.size), counts_row)


def related_bank(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = x[:, :4] @ rng.normal(size=(4, 5)) + 0.5 * rng.normal(size=(n, 5))
    return RepresentationBank({"a": {"l": torch.tensor(x)}, "b": {"l": torch.tensor(y)}}), x, y


@pytest.mark.parametrize("name", ["cka", "procrustes", "pwcca"])
def test_bank_resamples_equal_the_index_on_the_repeated_images(name):
    bank, x, y = related_bank()
    counts = resample_counts(x.shape[0], 6, 3)
    values = bank.resampled(name, Rep("a", "l"), Rep("b", "l"), counts, policy="flatten")
    m = get_measure(name)
    explicit = [m(torch.tensor(x[repeated(c)]), torch.tensor(y[repeated(c)])) for c in counts]
    np.testing.assert_allclose(values, explicit, atol=1e-9)


def test_dm_residual_resamples_keep_the_whole_samples_fit():
    bank, x, y = related_bank()
    counts = resample_counts(x.shape[0], 5, 1)
    values = bank.resampled("dm_residual", Rep("a", "l"), Rep("b", "l"), counts, policy="flatten")
    design = np.hstack([x, np.ones((x.shape[0], 1))])
    theta = np.linalg.lstsq(design, y, rcond=None)[0]  # the fit on all images, held fixed
    for value, c in zip(values, counts):
        idx = repeated(c)
        assert value == pytest.approx(((design[idx] @ theta - y[idx]) ** 2).sum() / (y[idx] ** 2).sum(), rel=1e-9)
    ones = np.ones((1, x.shape[0]), dtype=np.int64)  # every image once: the index itself
    assert bank.resampled("dm_residual", Rep("a", "l"), Rep("b", "l"), ones, policy="flatten")[0] == pytest.approx(
        get_measure("dm_residual")(torch.tensor(x), torch.tensor(y)), rel=1e-10
    )
    with pytest.raises(StitchkitError, match="do not fit 40 images"):
        bank.resampled("cka", Rep("a", "l"), Rep("b", "l"), counts[:, :10], policy="flatten")


def test_probe_cache_keeps_each_probes_hits(tmp_path):
    class Result:
        layer, rank, val_acc, train_acc = "l", None, 0.6, 0.7
        test_hits = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=np.uint8)  # not a multiple of 8

    config = ProbeConfig(epochs=1)
    cache = ProbeCache(tmp_path / "c.json")
    cache.put_results("fp", "digits", [Result()], config, "net")
    cache.put("old", {"val_acc": 0.5})  # an entry from before the hits were kept
    cache.save()
    again = ProbeCache(tmp_path / "c.json")
    np.testing.assert_array_equal(again.get_hits(ProbeCache.key("fp", "digits", "l", None, config)), Result.test_hits)
    assert again.get_hits("old") is None and again.get_hits("missing") is None


def toy_test(n_test=60, resamples=30, seed=5):
    """Two networks at rank 2 and 1; hits per representation; cka and dm_residual values per resample."""
    rng = np.random.default_rng(seed)
    comparisons = sensitivity_comparisons(["a", "b"], ["z"], [2, 1])
    reps = list(dict.fromkeys([c.reference for c in comparisons] + [c.candidate for c in comparisons]))
    p = {rep: 0.9 - 0.25 * (rep.rank is not None) - 0.2 * (rep.rank == 1) for rep in reps}
    hits = {rep: (rng.random(n_test) < p[rep]).astype(np.uint8) for rep in reps}
    hits.pop(reps[-1])  # one probe from an old cache: no hits, its accuracy fixed
    scores = {rep: float(hits[rep].mean()) if rep in hits else 0.5 for rep in reps}
    values = {
        "cka": rng.uniform(0.3, 1.0, (resamples, len(comparisons))),
        "dm_residual": rng.uniform(0.0, 0.6, (resamples, len(comparisons))),
    }
    return comparisons, reps, scores, hits, values


def test_resampled_rank_statistics_equal_a_direct_recomputation_on_the_resampled_images():
    comparisons, reps, scores, hits, values = toy_test()
    arrays = sample_arrays(comparisons, scores, hits, values, seed=7)
    counts = resample_counts(60, 30, 7)
    got = resampled_agreements(arrays, counts)
    for b in range(30):
        idx = repeated(counts[b])
        acc = {rep: hits[rep][idx].mean() if rep in hits else scores[rep] for rep in reps}
        f = [abs(acc[c.reference] - acc[c.candidate]) for c in comparisons]
        for measure, d in (("cka", 1 - values["cka"][b]), ("dm_residual", values["dm_residual"][b])):
            rho = sps.spearmanr(d, f, alternative="greater")
            assert got[measure][b].spearman == pytest.approx(rho.statistic, abs=1e-12)
            assert got[measure][b].spearman_p == pytest.approx(rho.pvalue, abs=1e-12)
    assert fixed_parts(arrays, ["cka", "dm_residual", "procrustes"]) == [
        f"the probe accuracies of {reps[-1].label()} (cached without per-image hits)",
        "the values of procrustes (no resamples kept)",
    ]
    with pytest.raises(StitchkitError, match="10 resamples of the probes' images for 30"):
        resampled_agreements(arrays, counts[:10])
