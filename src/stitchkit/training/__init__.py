"""One training loop for every trainable thing, plus base-model training and evaluation."""

from .loop import EpochLog, LoopSettings, TrainingDiverged, classification_step, evaluate, fit, run_epochs
from .optim import OptimConfig, build_optimizer, build_scheduler

__all__ = [
    "EpochLog",
    "LoopSettings",
    "OptimConfig",
    "TrainingDiverged",
    "build_optimizer",
    "build_scheduler",
    "classification_step",
    "evaluate",
    "fit",
    "run_epochs",
]
