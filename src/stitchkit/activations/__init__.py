"""Activations at named layers: extraction (one pass per model) and low-rank approximations."""

from .low_rank import LowRankBasis, low_rank, to_rows

__all__ = ["LowRankBasis", "low_rank", "to_rows"]
