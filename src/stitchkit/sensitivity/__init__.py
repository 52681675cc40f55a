"""The sensitivity and specificity tests of similarity measures (Ding, Denain & Steinhardt, NeurIPS 2021,
as adapted by Balogh & Jelasity, AAAI 2025).

* :mod:`.stats` — :func:`rank_agreement`: Spearman ρ, Kendall τ (one-sided p-values) and the fraction
  of badly ordered pairs between a dissimilarity and a functional difference.
* :mod:`.grounding` — what the tests are (its docstring), and every name below in one place;
* :mod:`.comparisons` — which (reference, candidate) pairs they compare (:func:`sensitivity_comparisons`,
  :func:`specificity_comparisons`) and which measures are array or stitching measures;
* :mod:`.measures` — the measures on the comparisons (:func:`array_measure_values`, :func:`stitching_measure_values`);
* :mod:`.report` — the :class:`GroundingReport` (points, statistics, tables, CSV, JSON, figure);
* :mod:`.settings` — :class:`GroundingSettings`;
* :mod:`.run` — :func:`run_grounding_test` on models, :func:`grounding_test_checkpoints` on checkpoints
  (what ``stitchkit sensitivity`` and ``stitchkit specificity`` call); the probe accuracies come from
  :class:`~stitchkit.probing.cache.ProbeCache` or are trained;
* :mod:`.figure` — the figure (matplotlib, imported lazily).
"""

from ..probing.cache import ProbeCache
from .comparisons import ALL, STITCH_MEASURES, TESTS, Comparison, sensitivity_comparisons, specificity_comparisons, split_measures
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
