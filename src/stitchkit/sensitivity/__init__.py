"""The sensitivity and specificity tests of similarity measures (Ding, Denain & Steinhardt, NeurIPS 2021,
as adapted by Balogh & Jelasity, AAAI 2025).

* :mod:`.stats` — :func:`rank_agreement`: Spearman ρ, Kendall τ (one-sided p-values) and the fraction
  of badly ordered pairs between a dissimilarity and a functional difference.
* :mod:`.comparisons` — which (reference, candidate) pairs they compare (:func:`sensitivity_comparisons`,
  :func:`specificity_comparisons`) and which measures are array or stitching measures;
* :mod:`.measures` — the measures on the comparisons (:func:`array_measure_values`, :func:`stitching_measure_values`);
* :mod:`.report` — the :class:`GroundingReport` (points, statistics, tables, CSV, JSON, figure);
* :mod:`.settings` — :class:`GroundingSettings`;
* :mod:`.run` — :func:`run_grounding_test` on models, :func:`grounding_test_checkpoints` on checkpoints
  (what ``stitchkit sensitivity`` and ``stitchkit specificity`` call); the probe accuracies come from
  :class:`~stitchkit.probing.cache.ProbeCache` or are trained;
* :mod:`.figure` — the figure (matplotlib, imported lazily).

Both tests compare *representations* — a layer of a network at a rank, :class:`~stitchkit.similarity.Rep`
— in (reference, candidate) pairs. For every pair and every measure they record the measure's
dissimilarity d (turned from a similarity or distance by the measure's metadata,
:meth:`~stitchkit.similarity.MeasureInfo.dissimilarity`: ``hi − value`` for a similarity with range
[lo, hi], ``value − lo`` for a distance) and the functional difference f = |acc(reference) −
acc(candidate)|, with acc the test accuracy of a linear probe on the representation
(:mod:`stitchkit.probing`). A measure passes when d orders the pairs as f does
(:func:`~.stats.rank_agreement`: Spearman ρ, Kendall τ, one-sided p-values, the fraction of badly
ordered pairs).

* **Sensitivity** (one group per layer ℓ): references are layer ℓ of every network at full rank;
  the candidates of a reference are layer ℓ of every network (the reference's own network included)
  at every rank in the list and at full rank — low-rank versions of the representation, which lose
  information that the probe may need — except the reference itself.
* **Specificity** (one group per reference layer): references are each reference layer of every
  network at full rank; candidates are every layer of every network at full rank except the reference
  itself: different layers and different seeds, which a good measure should tell apart only as much
  as their function differs.

Asymmetric measures are computed from the candidate to the reference: X = candidate (the source, the
front of a stitch), Y = reference (the target, the end of a stitch), as the paper's low-rank stitching
truncates the source. Array measures run on the first ``n_samples`` test images (the original's 1000);
``dm_accuracy`` / ``tlm_accuracy`` stitch the candidate's network into the reference's
(:func:`stitchkit.stitching.stitch_grid`, the candidate's rank as ``front_stitch_rank``) and use the
stitched accuracy.

Statistics are reported per group and for all groups together (``all``), in two scopes: ``pooled``
(every pair of the group in one ranking) and ``mean_over_references`` (the statistic computed over the
candidates of each reference, then averaged, as Ding et al. average over references; its p-values are
left empty).
"""

from ..probing.cache import ProbeCache
from .comparisons import (
    ALL,
    STITCH_MEASURES,
    TESTS,
    Comparison,
    sensitivity_comparisons,
    specificity_comparisons,
    split_measures,
)
from .measures import array_measure_values, stitching_measure_values
from .report import GroundingReport, grounding_report
from .run import grounding_test_checkpoints, network_names, run_grounding_test
from .settings import DEFAULT_MEASURES, GroundingSettings
from .stats import RankAgreement, bad_pair_fraction, rank_agreement

__all__ = [
    "ALL",
    "DEFAULT_MEASURES",
    "STITCH_MEASURES",
    "TESTS",
    "Comparison",
    "GroundingReport",
    "GroundingSettings",
    "ProbeCache",
    "RankAgreement",
    "array_measure_values",
    "bad_pair_fraction",
    "grounding_report",
    "grounding_test_checkpoints",
    "network_names",
    "rank_agreement",
    "run_grounding_test",
    "sensitivity_comparisons",
    "specificity_comparisons",
    "split_measures",
    "stitching_measure_values",
]
