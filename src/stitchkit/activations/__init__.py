"""Activations at named layers: extraction (one pass per model, cached) and low-rank approximations."""

from .extract import (
    ActivationCache,
    Activations,
    ExtractionSettings,
    extract_activations,
    model_fingerprint,
    sample_subset,
)
from .low_rank import LowRankBasis, low_rank, principal_directions, to_rows, truncate

__all__ = [
    "ActivationCache",
    "Activations",
    "ExtractionSettings",
    "LowRankBasis",
    "extract_activations",
    "low_rank",
    "model_fingerprint",
    "principal_directions",
    "sample_subset",
    "to_rows",
    "truncate",
]
