"""The settings records of the OOD test, each option's name, default and check declared once.

* :class:`PassOptions` — how a pass over a data set runs (device, batch size, loader workers, progress);
* :class:`DetectorFit` — which training-free detectors are fitted on the ID training split, and how;
* the metric convention, :class:`~.metrics.OODConvention` (:mod:`.metrics`, its home).

A settings record of a whole test inherits the records it carries (``class S(OODConvention, PassOptions)``),
so it can be handed on as any of them. Every record is frozen, built by keywords only, and checks its own
fields (:class:`SettingsRecord`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import StitchkitError


@dataclass(frozen=True, kw_only=True)
class SettingsRecord:
    """The base of the settings records: on construction, every record in the class's MRO checks its own
    fields (its ``check`` method), so a settings class that inherits several records runs all their checks."""

    def __post_init__(self) -> None:
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("check")
            if check is not None:
                check(self)


@dataclass(frozen=True, kw_only=True)
class PassOptions(SettingsRecord):
    """How a pass over a data set runs: none of these changes a score."""

    device: Any = "cpu"  # a torch.device or its name
    batch_size: int = 256
    workers: int = 0  # data loader worker processes
    progress: bool = False  # progress bars on stderr

    def check(self) -> None:
        if self.batch_size < 1:
            raise StitchkitError(f"batch size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise StitchkitError(f"loader workers must be non-negative, got {self.workers}")


@dataclass(frozen=True, kw_only=True)
class DetectorFit(SettingsRecord):
    """The training-free detectors (e.g. ``("mahalanobis", "knn")``) fitted on ``fit_samples`` random images
    of the ID training split (drawn with ``seed``, no augmentation), with each detector's keyword options
    (``training_free_options``, e.g. ``{"knn": {"k": 10}}``)."""

    training_free: Sequence[str] = ()
    training_free_options: Mapping[str, Mapping[str, Any]] | None = None
    fit_samples: int = 10_000
    seed: int = 0

    def check(self) -> None:
        if isinstance(self.training_free, str):
            raise StitchkitError(f"training_free takes a list of detector names, got the str {self.training_free!r}")


__all__ = ["DetectorFit", "PassOptions", "SettingsRecord"]
