"""The sensitivity and specificity tests of similarity measures (Ding, Denain & Steinhardt, NeurIPS 2021,
as adapted by Balogh & Jelasity, AAAI 2025).

* :mod:`.stats` — :func:`rank_agreement`: Spearman ρ, Kendall τ (one-sided p-values) and the fraction
  of badly ordered pairs between a dissimilarity and a functional difference.
* :mod:`.grounding` — the tests: which (reference, candidate) pairs they compare
  (:func:`sensitivity_comparisons`, :func:`specificity_comparisons`), the measures on them, the probe
  accuracies as functional scores, and the :class:`GroundingReport` (tables, JSON, figure);
  :func:`run_grounding_test` on models, :func:`grounding_test_checkpoints` on checkpoints (what
  ``stitchkit sensitivity`` and ``stitchkit specificity`` call).
* :mod:`.figure` — the figure (matplotlib, imported lazily).
"""

from .grounding import (
    ALL,
    DEFAULT_MEASURES,
    STITCH_MEASURES,
    TESTS,
    Comparison,
    GroundingReport,
    GroundingSettings,
    ProbeCache,
    array_measure_values,
    grounding_report,
    grounding_test_checkpoints,
    network_names,
    run_grounding_test,
    sensitivity_comparisons,
    specificity_comparisons,
    split_measures,
    stitching_measure_values,
)
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
