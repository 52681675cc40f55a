"""One training loop for every trainable thing, plus base-model training and evaluation."""

from .loop import EpochLog, TrainingDiverged, classification_step, evaluate, fit
from .optim import OptimConfig, build_optimizer, build_scheduler

__all__ = ["EpochLog", "OptimConfig", "TrainingDiverged", "build_optimizer", "build_scheduler", "classification_step", "evaluate", "fit"]
