"""Similarity measures between representations, as a library on arrays and tensors.

Every measure compares two data matrices (n data points × features, same rows on both sides) and
declares its metadata (:class:`MeasureInfo`: similarity or distance, range, symmetry, invariances,
citation); the tests check the metadata against the computation.

* :mod:`.registry` — :func:`get_measure`, :func:`list_measures`, :func:`measure_info`.
* :mod:`.cka` — linear CKA (biased and debiased HSIC), RBF CKA, :class:`StreamingCKA`.
* :mod:`.cca` — mean CCA, SVCCA, PWCCA (and :func:`canonical_correlations`).
* :mod:`.procrustes` — the orthogonal Procrustes distance (Ding et al.'s normalisation).
* :mod:`.direct` — the direct-matching residual; the stitching accuracies as metadata-only entries.
* :mod:`.policy` — how activations become matrices (flatten, positions, pool, cls, auto_original).
* :mod:`.compute` — :func:`compute` (policy + low rank + a result record) and :func:`pairwise_matrix`.
* :mod:`.pairs` — :class:`RepresentationBank` (each (network, layer, rank) truncated and prepared once)
  and :func:`similarity_table` (every measure × layer pair × rank pair of two networks).
* :mod:`.models` — :func:`compare_models` / :func:`compare_checkpoints`: one extraction per network,
  then :func:`similarity_table` (what ``stitchkit similarity`` calls).
* :mod:`.settings` — :class:`SimilaritySettings`: the options of a comparison, declared once.

=============== ========== ======== ========= ====================================================
measure         kind       range    symmetric invariances (each argument independently)
=============== ========== ======== ========= ====================================================
cka             similarity [0, 1]   yes       orthogonal, isotropic scaling, translation, permutation
cka_debiased    similarity [−1, 1]  yes       orthogonal, isotropic scaling, translation, permutation
rbf_cka         similarity [0, 1]   yes       orthogonal, isotropic scaling, translation, permutation
mean_cca        similarity [0, 1]   yes       the above and invertible linear
svcca           similarity [0, 1]   yes       orthogonal, isotropic scaling, translation, permutation
pwcca           distance   [0, 1]   no        isotropic scaling, translation, permutation
procrustes      distance   [0, 2]   yes       orthogonal, isotropic scaling, translation, permutation
dm_residual     distance   [0, 1]   no        orthogonal, isotropic scaling, permutation
dm_accuracy     similarity [0, 1]   no        (needs models: ``stitchkit stitch``)
tlm_accuracy    similarity [0, 1]   no        (needs models: ``stitchkit stitch``)
=============== ========== ======== ========= ====================================================

Two degeneracies to keep in mind (references.md section 2): biased linear CKA is large for unrelated
data when features ≫ samples (use ``cka_debiased``), and with features ≥ samples every canonical
correlation is 1, so the CCA family says "identical" for any data.
"""

from ..ranks import LOW_RANK_MODES
from .base import INVARIANCES, Measure, MeasureInfo
from .cca import PWCCA, SVCCA, MeanCCA, canonical_correlations
from .cka import RBFCKA, DebiasedLinearCKA, LinearCKA, StreamingCKA
from .compute import SimilarityResult, apply_rank, compute, pairwise_matrix
from .direct import DMResidual
from .models import DEFAULT_MEASURES, SimilarityReport, compare_checkpoints, compare_models
from .pairs import (
    PairResult,
    Rep,
    RepresentationBank,
    describe_mixed,
    layer_pairs,
    mixed_policies,
    result_matrix,
    similarity_table,
)
from .policy import POLICIES, matrix_shape, paired_matrices, resolve_policy, to_matrix
from .procrustes import Procrustes
from .registry import get_measure, list_measures, measure_info, measure_options
from .settings import SimilaritySettings

__all__ = [
    "DEFAULT_MEASURES",
    "PairResult",
    "Rep",
    "RepresentationBank",
    "SimilarityReport",
    "SimilaritySettings",
    "compare_checkpoints",
    "compare_models",
    "layer_pairs",
    "result_matrix",
    "mixed_policies",
    "describe_mixed",
    "similarity_table",
    "INVARIANCES",
    "LOW_RANK_MODES",
    "POLICIES",
    "DMResidual",
    "DebiasedLinearCKA",
    "LinearCKA",
    "MeanCCA",
    "Measure",
    "MeasureInfo",
    "PWCCA",
    "Procrustes",
    "RBFCKA",
    "SVCCA",
    "SimilarityResult",
    "StreamingCKA",
    "apply_rank",
    "canonical_correlations",
    "compute",
    "get_measure",
    "list_measures",
    "matrix_shape",
    "measure_info",
    "measure_options",
    "paired_matrices",
    "pairwise_matrix",
    "resolve_policy",
    "to_matrix",
]
