"""Linear probes on frozen representations (seed spec 1.6): the functional score of the sensitivity
and specificity tests.

* :mod:`.probe` — the probes (global average pool for conv, CLS token for tokens, vectors as they
  are), optional low rank (fixed basis or per batch), many (layer, rank) probes trained together
  with the one training loop; :func:`probe_activations` on arrays.
* :mod:`.model` — :func:`probe_model` / :func:`probe_checkpoint`: network and data loaded once for
  every (layer, rank).

>>> report = probe_checkpoint("runs/r18_s0/final.pt", layers=["layer3.1"], ranks=[None, 16, 4])
>>> report.accuracy("layer3.1", 4)
"""

from ..ranks import LOW_RANK_MODES, check_ranks, rank_label
from .arrays import probe_activations, probe_on_features
from .bank import FeatureStats, ProbeBank, ProbeSpec
from .model import feature_pass, probe_checkpoint, probe_datasets, probe_model
from .probe import (
    TOKEN_POOLS,
    ProbeConfig,
    ProbeReport,
    ProbeResult,
    default_milestones,
    pool_activation,
)

__all__ = [
    "LOW_RANK_MODES",
    "TOKEN_POOLS",
    "FeatureStats",
    "ProbeBank",
    "ProbeConfig",
    "ProbeReport",
    "ProbeResult",
    "ProbeSpec",
    "check_ranks",
    "default_milestones",
    "feature_pass",
    "pool_activation",
    "probe_activations",
    "probe_checkpoint",
    "probe_datasets",
    "probe_model",
    "probe_on_features",
    "rank_label",
]
