"""The settings records of the OOD test, each option's name, default and check declared once.

* :class:`PassOptions` — how a pass over a data set runs (device, batch size, loader workers, progress);
* :class:`DetectorFit` — which training-free detectors are fitted on the ID training split, and how;
* the metric convention, :class:`~.metrics.OODConvention` (:mod:`.metrics`, its home).

A settings record of a whole test inherits the records it carries (``class S(OODConvention, PassOptions)``),
so it can be handed on as any of them. Every record is frozen and built by keywords only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import StitchkitError


@dataclass(frozen=True, kw_only=True)
class PassOptions:
    """How a pass over a data set runs: none of these changes a score."""

    device: Any = "cpu"  # a torch.device or its name
    batch_size: int = 256
    workers: int = 0  # data loader worker processes
    progress: bool = False  # progress bars on stderr

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise StitchkitError(f"batch size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise StitchkitError(f"loader workers must be non-negative, got {self.workers}")
        later = getattr(super(), "__post_init__", None)  # the checks of the other records a settings class inherits
        if later is not None:
            later()


@dataclass(frozen=True, kw_only=True)
class DetectorFit:
    """The training-free detectors (e.g. ``("mahalanobis", "knn")``) fitted on ``fit_samples`` random images
    of the ID training split (drawn with ``seed``, no augmentation), with each detector's keyword options
    (``training_free_options``, e.g. ``{"knn": {"k": 10}}``)."""

    training_free: Sequence[str] = ()
    training_free_options: Mapping[str, Mapping[str, Any]] | None = None
    fit_samples: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.training_free, str):
            raise StitchkitError(f"training_free takes a list of detector names, got the str {self.training_free!r}")
        later = getattr(super(), "__post_init__", None)  # the checks of the other records a settings class inherits
        if later is not None:
            later()


__all__ = ["DetectorFit", "PassOptions"]
