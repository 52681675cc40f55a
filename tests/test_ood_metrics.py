"""OOD metrics and scores: scikit-learn agreement, closed forms, and both positive-class conventions."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from stitchkit.errors import StitchkitError
from stitchkit.ood import OODMetrics, auroc, average_precision, energy_score, fpr_at_tpr, msp_score, ood_metrics
from stitchkit.ood.metrics import ValueSummary


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rounding", [None, 1])  # rounding creates ties across the classes
def test_auroc_and_aupr_equal_scikit_learn(seed, rounding):
    rng = np.random.default_rng(seed)
    id_e = rng.normal(-3.0, 1.0, size=257)  # energies: ID lower
    ood_e = rng.normal(-2.0, 1.5, size=131)
    if rounding is not None:
        id_e, ood_e = id_e.round(rounding), ood_e.round(rounding)
    m = ood_metrics(id_e, ood_e)
    y_id = np.r_[np.ones(id_e.size), np.zeros(ood_e.size)]
    s = np.r_[-id_e, -ood_e]  # the original: ID positive, score −E
    assert m.auroc == pytest.approx(roc_auc_score(y_id, s), abs=1e-12)
    assert m.aupr_in == pytest.approx(average_precision_score(y_id, s), abs=1e-12)
    assert m.aupr_out == pytest.approx(average_precision_score(1 - y_id, -s), abs=1e-12)
    assert m.aupr == m.aupr_in and m.positive == "id"
    mo = ood_metrics(id_e, ood_e, positive="ood")
    assert mo.auroc == pytest.approx(m.auroc, abs=1e-12) and mo.aupr == mo.aupr_out
    assert auroc(-id_e, -ood_e) == pytest.approx(roc_auc_score(y_id, s), abs=1e-12)
    assert average_precision(-id_e, -ood_e) == pytest.approx(average_precision_score(y_id, s), abs=1e-12)


def test_perfect_separation_gives_the_closed_forms():
    id_e, ood_e = np.linspace(-30, -20, 50), np.linspace(-5, 0, 70)
    for positive in ("id", "ood"):
        m = ood_metrics(id_e, ood_e, positive=positive)
        assert (m.auroc, m.aupr_in, m.aupr_out, m.fpr95) == (1.0, 1.0, 1.0, 0.0)
    # reversed: the detector is perfectly wrong
    m = ood_metrics(ood_e, id_e)
    assert m.auroc == 0.0 and m.fpr95 == 1.0


def test_identical_distributions_give_auroc_one_half():
    rng = np.random.default_rng(0)
    m = ood_metrics(rng.normal(size=20000), rng.normal(size=20000))
    assert abs(m.auroc - 0.5) < 0.01
    same = rng.normal(size=500)
    assert ood_metrics(same, same).auroc == 0.5  # identical samples: every pair ties


def test_fpr95_conventions_on_a_skewed_example():
    # Energies (higher = more OOD). ID: 95 at 0 and a tail of 5 at 10; OOD: 88 at 20 and 12 at −1 (look very ID).
    id_e = np.r_[np.zeros(95), np.full(5, 10.0)]
    ood_e = np.r_[np.full(88, 20.0), np.full(12, -1.0)]
    # ID positive (the original's): thresholds on E from low to high. E ≤ −1 recalls 0 ID; E ≤ 0 recalls
    # exactly 95/100 ID, and lets in the 12 OOD samples at −1, so FPR95 = 12/100.
    m_id = ood_metrics(id_e, ood_e, positive="id")
    assert m_id.fpr95 == pytest.approx(0.12)
    # OOD positive: thresholds on E from high to low. E ≥ 20 detects 88% of OOD (0 ID flagged), E ≥ 10 and
    # E ≥ 0 still 88%, E ≥ −1 detects 100% and flags all 100 ID. 100% is closer to 95% than 88%: FPR95 = 1.
    m_ood = ood_metrics(id_e, ood_e, positive="ood")
    assert m_ood.fpr95 == pytest.approx(1.0)
    assert "ID positive" in m_id.convention and "OOD positive" in m_ood.convention
    # AUROC does not depend on the convention: P(E_ood > E_id) + ½P(tie) = (0.88·1 + 0.12·0) = 0.88
    assert m_id.auroc == m_ood.auroc == pytest.approx(0.88)


def test_fpr_rules_closest_and_at_least():
    # Positives 0..99 (higher = positive), negatives spread so that TPR 0.94 and 0.97 are the nearest levels.
    pos = np.r_[np.full(94, 10.0), np.full(3, 5.0), np.full(3, 0.0)]
    neg = np.r_[np.full(10, 7.0), np.full(20, 3.0), np.full(70, -5.0)]
    # thresholds: ≥10 → TPR .94, FPR 0; ≥7 → .94, .10; ≥5 → .97, .10; ≥3 → .97, .30; ≥0 → 1, .30; ≥−5 → 1, 1
    # closest to .95 is .94 (distance .01 vs .02), the first such threshold has FPR 0;
    # at_least takes the first threshold with TPR ≥ .95: TPR .97 at ≥5, FPR .10.
    assert fpr_at_tpr(pos, neg, 0.95, "closest") == pytest.approx(0.0)
    assert fpr_at_tpr(pos, neg, 0.95, "at_least") == pytest.approx(0.10)


def test_streaming_metrics_equal_the_one_shot_metrics():
    rng = np.random.default_rng(1)
    id_e, ood_e = rng.normal(size=300), rng.normal(1, size=200)
    stream = OODMetrics(positive="ood")
    stream.update(torch.from_numpy(id_e[:100]))
    stream.update(id_e[100:], ood_e[:50]).update(None, ood_e[50:])
    assert stream.compute().to_dict() == ood_metrics(id_e, ood_e, positive="ood").to_dict()
    with pytest.raises(StitchkitError, match="no OOD scores"):
        OODMetrics().update(id_e).compute()
    with pytest.raises(StitchkitError, match="NaN"):
        ood_metrics([0.0, math.nan], [1.0])
    with pytest.raises(StitchkitError, match="unknown positive class"):
        ood_metrics([0.0], [1.0], positive="outlier")


def test_energy_of_zero_logits_is_minus_log_k_and_msp():
    for k in (2, 10, 1000):
        assert energy_score(torch.zeros(3, k)).tolist() == pytest.approx([-math.log(k)] * 3)
        assert energy_score(torch.zeros(1, k), temperature=2.0).item() == pytest.approx(-2.0 * math.log(k))
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    assert energy_score(logits).item() == pytest.approx(-math.log(math.exp(2) + 1 + math.exp(-1)))
    assert msp_score(logits).item() == pytest.approx(-math.exp(2) / (math.exp(2) + 1 + math.exp(-1)))
    with pytest.raises(StitchkitError, match="temperature"):
        energy_score(logits, temperature=0)


def test_value_summary_closed_forms_and_errors():
    shuffled = np.random.default_rng(0).permutation(np.arange(101.0))
    s = ValueSummary.of(shuffled)
    assert (s.n, s.mean, s.min, s.q25, s.q50, s.q75, s.max) == (101, 50.0, 0.0, 25.0, 50.0, 75.0, 100.0)
    # four values: linear interpolation between order statistics at (n − 1)·p = 0.75, 1.5, 2.25
    s = ValueSummary.of(torch.tensor([[4.0, 1.0], [3.0, 2.0]]))  # any shape, tensors too
    assert (s.n, s.mean, s.q25, s.q50, s.q75) == (4, 2.5, 1.75, 2.5, 3.25)
    assert ValueSummary.of([7.0]).to_dict() == {
        "n": 1,
        "mean": 7.0,
        "min": 7.0,
        "q25": 7.0,
        "q50": 7.0,
        "q75": 7.0,
        "max": 7.0,
    }
    with pytest.raises(StitchkitError, match="no activation norms to summarise"):
        ValueSummary.of([], "activation norms")


def test_metrics_carry_both_score_distributions_and_auroc_reads_against_them():
    rng = np.random.default_rng(1)
    id_e = rng.normal(size=64)
    m = ood_metrics(id_e, id_e - 10.0)  # every "OOD" score below every ID score: rated more typical
    assert m.auroc == 0.0
    assert m.id_score_summary == ValueSummary.of(id_e) and m.ood_score_summary == ValueSummary.of(id_e - 10.0)
    assert m.ood_score_summary.max < m.id_score_summary.min and m.ood_score_summary.mean == pytest.approx(
        m.mean_ood_score, abs=1e-12
    )
    assert ood_metrics(id_e, id_e + 10.0, positive="ood").auroc == 1.0  # above: flagged, whichever class is positive
    assert m.to_dict()["ood_score_summary"]["q50"] == pytest.approx(float(np.median(id_e)) - 10.0, abs=1e-12)
