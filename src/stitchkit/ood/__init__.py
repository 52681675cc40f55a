"""OOD detectors on hidden representations, and the OOD test of stitched representations.

Does a stitching layer feed the end network representations that look like its own, or something
out-of-distribution that merely happens to give the right answer (Balogh & Jelasity 2025)? For each
layer of the end network a detector learns what its genuine activations look like; it then scores the
stitched activations.

* :mod:`.scores` — :func:`energy_score` (Liu et al. 2020) and :func:`msp_score`.
* :mod:`.metrics` — AUROC, AUPR-In/Out, FPR95 with an explicit positive-class convention;
  :class:`OODMetrics` (``update`` / ``compute``).
* :mod:`.detectors` — the :class:`Detector` interface (``fit`` / ``predict`` outlier scores) with
  :class:`EnergyDetector`, :class:`MahalanobisDetector` and :class:`KNNDetector`, one module each.
* :mod:`.train` — :func:`train_detectors`: supervised pre-training on a frozen source's activations,
  then energy fine-tuning with outlier exposure, several layers sharing one source pass
  (:class:`~.bank.DetectorBank`; the configuration :mod:`.train_config`, the loss :mod:`.finetune_loss`).
* :mod:`.registry` — :class:`DetectorRegistry`: ``<fdir>/<id>.pt`` + ``meta.json``, lookup by content
  hash, deterministic ids, safe for concurrent writers.
* :mod:`.evaluate` — :func:`genuine_scores` / :func:`genuine_pass` (with activation norms),
  :func:`evaluate_stitched`, :func:`check_detectors`, :class:`OODMatrices`; each stitch's record
  (:class:`StitchOODResult`, :mod:`.stitch_record`) keeps beside its AUROC both sides' score
  distributions (:class:`ValueSummary`) and the norm ratio of its activations to the genuine ones.
"""

from .detectors import (
    Detector,
    EnergyDetector,
    KNNDetector,
    MahalanobisDetector,
    list_detectors,
    make_detector,
    pool_features,
    training_free_detectors,
)
from .evaluate import (
    DetectorCheck,
    DetectorCheckSettings,
    StitchOODResult,
    check_detectors,
    evaluate_stitched,
    fit_training_free,
    genuine_pass,
    genuine_scores,
    load_layer_detectors,
    stitched_batches,
)
from .matrices import OODMatrices
from .metrics import (
    FPR_RULES,
    POSITIVE_CLASSES,
    OODConvention,
    OODMetrics,
    OODMetricsResult,
    ValueSummary,
    auroc,
    average_precision,
    fpr_at_tpr,
    ood_metrics,
)
from .registry import DEFAULT_DETECTOR_DIR, DetectorRegistry, detector_id
from .scores import SCORES, energy_score, logit_score, msp_score
from .settings import DetectorFit, PassOptions
from .train import (
    DetectorTrainConfig,
    TrainedDetector,
    energy_finetune_loss,
    train_detectors,
    train_detectors_for_checkpoint,
)

__all__ = [
    "DEFAULT_DETECTOR_DIR",
    "FPR_RULES",
    "POSITIVE_CLASSES",
    "SCORES",
    "Detector",
    "DetectorCheck",
    "DetectorRegistry",
    "DetectorTrainConfig",
    "EnergyDetector",
    "KNNDetector",
    "MahalanobisDetector",
    "OODMatrices",
    "OODMetrics",
    "OODMetricsResult",
    "StitchOODResult",
    "TrainedDetector",
    "ValueSummary",
    "auroc",
    "average_precision",
    "check_detectors",
    "detector_id",
    "energy_finetune_loss",
    "energy_score",
    "evaluate_stitched",
    "fit_training_free",
    "fpr_at_tpr",
    "genuine_pass",
    "genuine_scores",
    "list_detectors",
    "load_layer_detectors",
    "logit_score",
    "make_detector",
    "msp_score",
    "ood_metrics",
    "pool_features",
    "stitched_batches",
    "train_detectors",
    "train_detectors_for_checkpoint",
    "DetectorCheckSettings",
    "DetectorFit",
    "OODConvention",
    "PassOptions",
    "training_free_detectors",
]
