"""OOD detection metrics with an explicit positive-class convention.

Every detector in :mod:`stitchkit.ood` produces **outlier scores**: higher means "more
out-of-distribution" (energy, Mahalanobis distance, k-NN distance). A metric needs a *positive class*,
and the literature uses both (references.md section 3):

* ``positive="id"`` (the default, as in the original code after Hendrycks et al. and Liu et al.): ID
  samples are positives, scored by ``s = −outlier score`` (for energy: ``s = −E = logsumexp(f)``).
  FPR95 is the fraction of OOD samples scored above the threshold at which 95% of ID samples are
  recalled; "AUPR" is AUPR-In.
* ``positive="ood"`` (OpenOOD, pytorch-ood): OOD samples are positives, scored by the outlier score.
  FPR95 is the fraction of ID samples flagged at the threshold that detects 95% of the OOD samples;
  "AUPR" is AUPR-Out.

AUROC is the same under both. AUPR-In and AUPR-Out are always both reported. On skewed score
distributions the two FPR95 values can differ wildly, so every result states its convention.

Definitions (n_pos positives, n_neg negatives, thresholds at the distinct score values):

* AUROC = P(s_pos > s_neg) + ½·P(s_pos = s_neg), computed exactly from mid-ranks (Mann–Whitney U);
  equal to scikit-learn's ``roc_auc_score``.
* Average precision = Σ_i (R_i − R_{i−1})·P_i over the distinct thresholds in decreasing order, the
  step-wise (non-interpolated) area under the precision-recall curve; equal to scikit-learn's
  ``average_precision_score``. AUPR-In uses ID as positive with score −outlier score; AUPR-Out uses OOD
  as positive with the outlier score.
* FPR at ``tpr`` (0.95): among the distinct thresholds, ``rule="closest"`` (the original's) takes the
  one whose true-positive rate is closest to ``tpr`` (ties, within 1e-12, go to the higher TPR, i.e. the
  larger FPR); ``rule="at_least"`` takes the highest threshold whose TPR reaches ``tpr``. Both give the
  false-positive rate there.

Beside the metrics, :class:`ValueSummary` records each side's score distribution (mean, min,
quartiles, max), which says what an AUROC means: AUROC = P(OOD score > ID score) + ½·P(tie), so an
AUROC far below ½ means the "OOD" side scores *lower* (more typical) than the ID side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata

from ..choices import FPR_RULES, POSITIVE_CLASSES  # torch-free home of the names (the CLI reads them)
from ..errors import StitchkitError, unknown_name
from .settings import SettingsRecord

_TIE = 1e-12


def _as_scores(values: Any, what: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise StitchkitError(f"no {what} scores: OOD metrics need at least one score on each side")
    if not np.all(np.isfinite(array)):
        bad = int(np.sum(~np.isfinite(array)))
        raise StitchkitError(
            f"{bad} of the {array.size} {what} scores are NaN or infinite; check the detector and its inputs"
        )
    return array


def _curve(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct threshold, highest threshold first."""
    scores = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-scores, kind="mergesort")
    scores, is_pos = scores[order], is_pos[order]
    ends = np.r_[np.flatnonzero(np.diff(scores) != 0), scores.size - 1]
    tps = np.cumsum(is_pos)[ends]
    fps = (ends + 1) - tps
    return tps, fps


def auroc(pos_scores: Any, neg_scores: Any) -> float:
    """Area under the ROC curve for scores where higher means positive (ties count ½)."""
    pos, neg = _as_scores(pos_scores, "positive"), _as_scores(neg_scores, "negative")
    ranks = rankdata(np.concatenate([pos, neg]))  # mid-ranks for ties
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def average_precision(pos_scores: Any, neg_scores: Any) -> float:
    """Step-wise area under the precision-recall curve, positives scored higher (= sklearn's AP)."""
    pos, neg = _as_scores(pos_scores, "positive"), _as_scores(neg_scores, "negative")
    tps, fps = _curve(pos, neg)
    precision = tps / (tps + fps)
    recall = tps / pos.size
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_at_tpr(pos_scores: Any, neg_scores: Any, tpr: float = 0.95, rule: str = "closest") -> float:
    """False-positive rate at the threshold reaching true-positive rate ``tpr`` (see the module doc)."""
    if not 0.0 < tpr <= 1.0:
        raise StitchkitError(f"the TPR level must be in (0, 1], got {tpr}")
    if rule not in FPR_RULES:
        raise unknown_name("FPR rule", rule, FPR_RULES)
    pos, neg = _as_scores(pos_scores, "positive"), _as_scores(neg_scores, "negative")
    tps, fps = _curve(pos, neg)
    tprs, fprs = tps / pos.size, fps / neg.size
    if rule == "at_least":
        index = int(np.flatnonzero(tprs >= tpr - _TIE)[0])
    else:
        distance = np.abs(tprs - tpr)
        candidates = np.flatnonzero(distance <= distance.min() + _TIE)
        best = tprs[candidates].max()
        index = int(candidates[tprs[candidates] >= best - _TIE][0])
    return float(fprs[index])


@dataclass
class ValueSummary:
    """The distribution of a set of values: count, mean, min, quartiles (``q50`` = median) and max.

    Quartiles are ``numpy.quantile``'s default (linear interpolation between order statistics).
    """

    n: int
    mean: float
    min: float
    q25: float
    q50: float
    q75: float
    max: float

    @classmethod
    def of(cls, values: Any, what: str = "values") -> ValueSummary:
        """The summary of ``values`` (array-like or tensor, any shape, at least one value; a NaN makes
        every statistic NaN)."""
        array = _scores_or_empty(values)
        if array.size == 0:
            raise StitchkitError(f"no {what} to summarise: a distribution needs at least one value")
        q25, q50, q75 = np.quantile(array, [0.25, 0.5, 0.75])
        return cls(
            int(array.size),
            float(array.mean()),
            float(array.min()),
            float(q25),
            float(q50),
            float(q75),
            float(array.max()),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OODMetricsResult:
    """OOD metrics of one ID/OOD split, with the conventions that produced them.

    ``aupr`` and ``fpr95`` follow ``positive``; ``aupr_in`` and ``aupr_out`` are both always given.
    ``mean_id_score`` / ``mean_ood_score`` are means of the outlier scores (for energy: mean energies);
    ``id_score_summary`` / ``ood_score_summary`` their whole distributions (:class:`ValueSummary`).
    """

    auroc: float
    aupr_in: float
    aupr_out: float
    fpr95: float
    aupr: float
    n_id: int
    n_ood: int
    mean_id_score: float
    mean_ood_score: float
    positive: str = "id"
    tpr_level: float = 0.95
    fpr_rule: str = "closest"
    score: str = "energy"
    convention: str = field(default="")
    id_score_summary: ValueSummary | None = None
    ood_score_summary: ValueSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ood_metrics(
    id_scores: Any,
    ood_scores: Any,
    *,
    positive: str = "id",
    tpr: float = 0.95,
    fpr_rule: str = "closest",
    score: str = "energy",
) -> OODMetricsResult:
    """AUROC, AUPR-In, AUPR-Out and FPR at ``tpr`` from *outlier scores* (higher = more OOD).

    ``positive`` picks the positive class (``"id"``, the original's default, or ``"ood"``); ``score``
    names the outlier score for the record.
    """
    if positive not in POSITIVE_CLASSES:
        raise unknown_name("positive class", positive, POSITIVE_CLASSES)
    id_s, ood_s = _as_scores(id_scores, "in-distribution"), _as_scores(ood_scores, "OOD")
    aupr_in = average_precision(-id_s, -ood_s)
    aupr_out = average_precision(ood_s, id_s)
    if positive == "id":
        fpr = fpr_at_tpr(-id_s, -ood_s, tpr, fpr_rule)
        aupr = aupr_in
        text = (
            f"ID positive, scored by −{score}; FPR{round(100 * tpr)} = OOD fraction above the threshold "
            f"recalling {tpr:g} of ID; AUPR = AUPR-In"
        )
    else:
        fpr = fpr_at_tpr(ood_s, id_s, tpr, fpr_rule)
        aupr = aupr_out
        text = (
            f"OOD positive, scored by {score}; FPR{round(100 * tpr)} = ID fraction above the threshold "
            f"detecting {tpr:g} of OOD; AUPR = AUPR-Out"
        )
    return OODMetricsResult(
        auroc=auroc(-id_s, -ood_s),
        aupr_in=aupr_in,
        aupr_out=aupr_out,
        fpr95=fpr,
        aupr=aupr,
        n_id=int(id_s.size),
        n_ood=int(ood_s.size),
        mean_id_score=float(id_s.mean()),
        mean_ood_score=float(ood_s.mean()),
        positive=positive,
        tpr_level=tpr,
        fpr_rule=fpr_rule,
        score=score,
        convention=text + f" (FPR rule: {fpr_rule})",
        id_score_summary=ValueSummary.of(id_s),
        ood_score_summary=ValueSummary.of(ood_s),
    )


@dataclass(frozen=True, kw_only=True)
class OODConvention(SettingsRecord):
    """The convention of the OOD metrics, declared once: the positive class (``"id"``, the original's, or
    ``"ood"``), the TPR level of the FPR and the rule picking its threshold (:func:`fpr_at_tpr`).

    Settings records that carry the convention inherit these fields (as :class:`~stitchkit.utils.run_options.RunOptions`
    is inherited), so a record of them is itself a convention."""

    positive: str = "id"
    tpr: float = 0.95
    fpr_rule: str = "closest"

    def check(self) -> None:
        if self.positive not in POSITIVE_CLASSES:
            raise unknown_name("positive class", self.positive, POSITIVE_CLASSES)
        if self.fpr_rule not in FPR_RULES:
            raise unknown_name("FPR rule", self.fpr_rule, FPR_RULES)
        if not 0.0 < self.tpr <= 1.0:
            raise StitchkitError(f"the TPR level must be in (0, 1], got {self.tpr}")

    def options(self) -> dict[str, Any]:
        """The convention as the keywords of :func:`ood_metrics` (and of the bootstrap's ``ood_metric_samples``)."""
        return {"positive": self.positive, "tpr": self.tpr, "fpr_rule": self.fpr_rule}

    def metrics(self, id_scores: Any, ood_scores: Any, score: str) -> OODMetricsResult:
        """:func:`ood_metrics` of outlier scores under this convention; ``score`` names the outlier score."""
        return ood_metrics(id_scores, ood_scores, **self.options(), score=score)


class OODMetrics:
    """Streaming OOD metrics in the torchmetrics / pytorch-ood style.

    >>> metrics = OODMetrics(positive="id")
    >>> for id_batch, ood_batch in ...: metrics.update(id_batch, ood_batch)   # outlier scores
    >>> record = metrics.compute()          # OODMetricsResult, convention included

    Either side of ``update`` may be None (e.g. ID scores computed once, OOD scores batch by batch).
    The metrics are rank statistics, so the scores are kept (as float64 arrays) until ``compute``.
    """

    def __init__(self, positive: str = "id", tpr: float = 0.95, fpr_rule: str = "closest", score: str = "energy"):
        if positive not in POSITIVE_CLASSES:
            raise unknown_name("positive class", positive, POSITIVE_CLASSES)
        if fpr_rule not in FPR_RULES:
            raise unknown_name("FPR rule", fpr_rule, FPR_RULES)
        self.positive, self.tpr, self.fpr_rule, self.score = positive, tpr, fpr_rule, score
        self.reset()

    def reset(self) -> OODMetrics:
        self._id: list[np.ndarray] = []
        self._ood: list[np.ndarray] = []
        return self

    def update(self, id_scores: Any = None, ood_scores: Any = None) -> OODMetrics:
        if id_scores is not None:
            self._id.append(_scores_or_empty(id_scores))
        if ood_scores is not None:
            self._ood.append(_scores_or_empty(ood_scores))
        return self

    @property
    def id_scores(self) -> np.ndarray:
        return np.concatenate(self._id) if self._id else np.zeros(0)

    @property
    def ood_scores(self) -> np.ndarray:
        return np.concatenate(self._ood) if self._ood else np.zeros(0)

    def compute(self) -> OODMetricsResult:
        return ood_metrics(
            self.id_scores,
            self.ood_scores,
            positive=self.positive,
            tpr=self.tpr,
            fpr_rule=self.fpr_rule,
            score=self.score,
        )


def _scores_or_empty(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)
