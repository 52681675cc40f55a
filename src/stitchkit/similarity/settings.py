"""What a comparison of two networks' layers computes and how: one record, :class:`SimilaritySettings`,
read by :func:`~.models.compare_models`, :func:`~.pairs.similarity_table` (its table fields),
``stitchkit similarity``, :func:`stitchkit.compare` (its options) and a study's similarity units.

Each option's name, default and check are here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..choices import DEFAULT_POLICY, DEFAULT_SIMILARITY_MEASURES
from ..errors import StitchkitError, unknown_name
from ..uncertainty.bootstrap import DEFAULT_LEVEL
from ..uncertainty.similarity import UncertaintyPlan


@dataclass(frozen=True, kw_only=True)
class SimilaritySettings:
    """The options of a comparison (every one keyword-only, with its default).

    What is computed: ``measures`` on the first ``n_samples`` items (None: all), layer pairs i-i or every
    pair (``all_pairs``), every rank pair of ``ranks_x`` × ``ranks_y`` (None: full rank), the data-matrix
    ``policy`` and the ``low_rank_mode``; ``bootstrap`` resamples of the images (an interval at ``level``)
    and ``permutations`` (a p-value and a null-calibrated score), 0 = off, seeded by ``uncertainty_seed``
    (:mod:`stitchkit.uncertainty.similarity`).

    How (no effect on a value): ``device``, ``batch_size``, loader ``workers`` and ``prefetch``, the
    activation cache folder ``cache_dir`` (None: no cache), ``progress`` bars; ``data_root`` and
    ``download`` for data given by name.
    """

    measures: Sequence[str] = DEFAULT_SIMILARITY_MEASURES  # the original script's three
    n_samples: int | None = 1000  # the original: the first 1000 test images
    ranks_x: Sequence[int | None] = (None,)
    ranks_y: Sequence[int | None] = (None,)
    all_pairs: bool = False
    policy: str = DEFAULT_POLICY
    low_rank_mode: str = "fixed"
    bootstrap: int = 0
    permutations: int = 0
    level: float = DEFAULT_LEVEL
    uncertainty_seed: int = 0
    device: str = "auto"
    batch_size: int = 256
    workers: int = 0
    prefetch: int = 1
    cache_dir: str | Path | None = None
    progress: bool = False
    data_root: str | None = None
    download: bool = True

    def __post_init__(self) -> None:
        self.uncertainty()  # its checks
        if self.batch_size < 1:
            raise StitchkitError(f"batch size must be at least 1, got {self.batch_size}")
        if self.n_samples is not None and self.n_samples < 2:
            raise StitchkitError(f"similarity measures need at least 2 samples, got --n-samples {self.n_samples}")

    def uncertainty(self) -> UncertaintyPlan:
        """The bootstrap and permutation plan of these settings (a fresh one: it keeps its draws)."""
        return UncertaintyPlan(
            bootstrap=self.bootstrap, permutations=self.permutations, level=self.level, seed=self.uncertainty_seed
        )


#: the splits :func:`~.models.compare_checkpoints` reads the first ``n_samples`` images of
CHECKPOINT_SPLITS = ("test", "train")


@dataclass(frozen=True, kw_only=True)
class CheckpointOptions:
    """How :func:`~.models.compare_checkpoints` loads two checkpoints and their data: the ``dataset``
    (None: the one the first checkpoint records), its ``split`` (:data:`CHECKPOINT_SPLITS`) and the
    ``model_options`` of the checkpoints' builders (for checkpoints that do not describe themselves)."""

    dataset: str | None = None
    split: str = "test"
    model_options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.split not in CHECKPOINT_SPLITS:
            raise unknown_name("split", str(self.split), CHECKPOINT_SPLITS)


__all__ = ["CHECKPOINT_SPLITS", "CheckpointOptions", "SimilaritySettings"]
