"""The options of the model-level sensitivity and specificity tests."""

from __future__ import annotations

from dataclasses import dataclass, field

# torch-free home (the CLI reads it)
from ..choices import DEFAULT_AUGMENTATION, DEFAULT_GROUNDING_MEASURES, DEFAULT_POLICY
from ..data.augmentation import check_augmentation
from ..errors import StitchkitError
from ..probing.probe import ProbeConfig
from ..ranks import low_rank_mode
from ..utils.run_options import RunOptions
from .comparisons import split_measures

DEFAULT_MEASURES = DEFAULT_GROUNDING_MEASURES


@dataclass
class GroundingSettings(RunOptions):
    """Options of the model-level tests (defaults: the original's probe and similarity settings)."""

    measures: list[str] = field(default_factory=lambda: list(DEFAULT_MEASURES))
    n_samples: int | None = 1000
    policy: str = DEFAULT_POLICY
    low_rank_mode: str = "fixed"
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    #: JSON file of probe results reused across runs (keyed by model hash, dataset, layer, rank and probe options)
    probe_cache: str | None = None
    #: stitching measures: test images used for the stitched accuracy (None: all), K of direct matching,
    #: epochs / batch size / learning rate of task loss matching (the paper: 30, 256, 1e-3)
    stitch_test_samples: int | None = 1000
    stitch_fit_samples: int | None = 100
    tlm_epochs: int = 30
    tlm_batch_size: int = 256
    tlm_lr: float = 1e-3
    #: TLM trains on a fixed random subset of this many training images (None: all)
    tlm_train_samples: int | None = None
    #: augmentation of TLM's training images (:data:`~stitchkit.choices.AUGMENTATIONS`; "network": the
    #: reference (end) network's, as its checkpoint records); the probes' is ``probe.augment``
    tlm_augment: str = DEFAULT_AUGMENTATION
    batch_size: int = 256
    #: keep each array measure's values on this many bootstrap resamples of the measures' images (0: none),
    #: drawn with ``bootstrap_seed`` (:mod:`.per_sample`: the study's verdict resamples)
    bootstrap: int = 0
    bootstrap_seed: int = 0
    progress: bool = field(default=False, kw_only=True)  # RunOptions, with no bars by default

    def validate(self) -> GroundingSettings:
        self.low_rank_mode = low_rank_mode(self.low_rank_mode)  # one spelling (the earlier per-batch warns)
        self.probe.validate()
        array, stitch = split_measures(self.measures)
        if not array and not stitch:
            raise StitchkitError("no measures given")
        if self.n_samples is not None and self.n_samples < 3:
            raise StitchkitError(f"the tests need at least 3 samples for the measures, got {self.n_samples}")
        if self.tlm_epochs < 1:
            raise StitchkitError(f"task loss matching needs at least 1 epoch, got {self.tlm_epochs}")
        if self.tlm_lr <= 0 or self.tlm_batch_size < 1:
            raise StitchkitError(
                f"task loss matching needs a positive learning rate and batch size, got {self.tlm_lr} and "
                f"{self.tlm_batch_size}"
            )
        if self.tlm_train_samples is not None and self.tlm_train_samples < 1:
            raise StitchkitError(f"task loss matching needs at least 1 training image, got {self.tlm_train_samples}")
        for name in ("bootstrap", "bootstrap_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StitchkitError(f"{name} must be a non-negative integer, got {value!r}")
        check_augmentation(self.tlm_augment, "tlm_augment")
        self.check_run_options()
        return self
