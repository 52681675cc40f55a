"""The configuration of a detector training run (:class:`DetectorTrainConfig`): torch-free, so that the
commands can build it before any computation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..choices import DEFAULT_AUGMENTATION, OOD_SCORES  # torch-free home of the names (the CLI reads them)
from ..data.augmentation import check_augmentation
from ..errors import StitchkitError, unknown_name
from ..utils.numbers import check_finite, check_seed
from ..utils.run_options import RunOptions

# Configuration fields that do not change the trained weights: left out of the detector id. The
# augmentation enters it resolved, as it acts (stitchkit.ood.train_inputs.DetectorAugmentation.identity).
_NOT_IN_ID = (
    "save_dir",
    "final_save_dir",
    "data_root",
    "ft_id_root",
    "ft_ood_root",
    "device",
    "workers",
    "prefetch",
    "progress",
    "verbose",
    "val_subset",
    "save_frequency",
    "register",
    "overwrite",
    "augment",
    "ft_id_augment",
)
# Fields in the detector id only when not at their defaults (the ids of detectors trained before they existed stay).
_IN_ID_WHEN_SET = ("scheduler", "schedule_unit", "warmup_fraction")


@dataclass
class DetectorTrainConfig(RunOptions):
    """Everything that shapes a detector training run. Defaults are the original's (spec 1.4)."""

    save_dir: str
    model_type: str | None = None  # -m; None: repr_cls_resnet18 for (C,H,W) layers, repr_cls_vit_tiny for (T,D)
    model_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"width": 8}
    dataset: str | None = None  # -d; None: the source checkpoint's dataset, else cifar10
    epochs: int = 100  # -e, supervised pre-training
    batch_size: int = 64
    seed: int = 0
    lr: float = 1e-3
    weight_decay: float = 1e-5
    reduce_lr_epochs: list[int] = field(default_factory=list)  # -rlre
    save_frequency: int = 1
    ft_id_dataset: str | None = None  # -ftidd; None: = dataset
    ft_id_root: str | None = None
    ft_ood_dataset: str = "outlier_exposure"  # -ftoodd
    ft_ood_root: str | None = None
    ft_epochs: int = 20  # -fe
    m_in: float = -25.0
    m_out: float = -7.0
    score: str = "energy"  # or "OE"
    energy_weight: float = 0.1
    oe_weight: float = 0.5
    ft_lr_per_batch: bool = False  # parity: the original's MultiStepLR([fe//2]) stepped every batch
    #: the LR schedule of both phases (stitchkit.training.optim); "none" is the original's ×0.1 decays above
    scheduler: str = "none"
    schedule_unit: str = "epoch"
    warmup_fraction: float = 0.0
    #: augmentation of the source's training images: pre-training and (unless ft_id_augment) the ID half
    #: of the fine-tuning; "network" = as the source checkpoint records (stitchkit.data.augmentation)
    augment: str = DEFAULT_AUGMENTATION
    #: the ID half of the fine-tuning: True = its set's default augmentation (the original used ftidd's
    #: default train transform, none for CIFAR-5M), False = none, None = as ``augment``
    ft_id_augment: bool | None = None
    train_subset: int | None = None  # pre-train on a fixed random subset of N images
    ft_samples: int | None = None  # cap the samples per fine-tuning epoch (each side)
    val_subset: int | None = None  # validate on the first N test images (None: all; 0: no validation)
    final_save_dir: str = "./models/repr_cls_ood_detectors"  # -fdir
    register: bool = True
    overwrite: bool = False  # train into a -dir that already holds finished detectors

    def validate(self) -> DetectorTrainConfig:
        if self.score not in OOD_SCORES:
            raise unknown_name("OOD score", self.score, OOD_SCORES)
        check_augmentation(self.augment, "augment")
        check_seed(self.seed)
        check_finite(
            {
                "learning rate": self.lr,
                "weight decay": self.weight_decay,
                "energy margin m_in": self.m_in,
                "energy margin m_out": self.m_out,
            }
        )
        if self.ft_id_augment not in (None, True, False):
            raise StitchkitError(f"ft_id_augment must be true, false or None (as augment), got {self.ft_id_augment!r}")
        checks = [
            (self.epochs >= 0, f"pre-training epochs (-e) must be non-negative, got {self.epochs}"),
            (self.ft_epochs >= 0, f"fine-tuning epochs (-fe) must be non-negative, got {self.ft_epochs}"),
            (
                self.batch_size >= 2,
                "batch size must be at least 2 (fine-tuning batches are half ID, half outliers), "
                f"got {self.batch_size}",
            ),
            (
                self.save_frequency >= 1,
                f"save frequency (-sf) must be at least 1 (the original's 0 crashed), got {self.save_frequency}",
            ),
            (self.lr > 0, f"learning rate must be positive, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be non-negative, got {self.weight_decay}"),
            (
                all(m > 0 for m in self.reduce_lr_epochs),
                f"LR decay epochs (-rlre) must be positive, got {self.reduce_lr_epochs}",
            ),
            (
                self.train_subset is None or self.train_subset >= 1,
                f"training subset must be at least 1 image, got {self.train_subset}",
            ),
            (
                self.ft_samples is None or self.ft_samples >= 1,
                f"fine-tuning samples per epoch must be at least 1, got {self.ft_samples}",
            ),
            (
                self.val_subset is None or self.val_subset >= 0,
                f"validation subset must be non-negative, got {self.val_subset}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise StitchkitError(message)
        if self.ft_lr_per_batch and (self.scheduler != "none" or self.schedule_unit != "epoch"):
            raise StitchkitError(
                "--ft-lr-per-batch is the original's fine-tuning decay, set batch by batch; it cannot be combined with "
                "another LR schedule (--lr-scheduler, --schedule-unit)"
            )
        self.optim("pretrain").validate()
        self.optim("finetune").validate()
        self.check_run_options()
        return self

    def optim(self, phase: str):
        """The optimisation of ``phase`` (``"pretrain"`` or ``"finetune"``): Adam(lr, weight decay) with the run's
        schedule; the milestones (used by the default schedule) are -rlre for pre-training and ``ft_epochs // 2``
        for fine-tuning (none with ``ft_lr_per_batch``: its decay is set batch by batch)."""
        from ..training.optim import OptimConfig  # deferred: this module stays torch-free

        if phase == "pretrain":
            milestones = list(self.reduce_lr_epochs)
        else:
            half = self.ft_epochs // 2
            milestones = [half] if half > 0 and not self.ft_lr_per_batch else []
        return OptimConfig(
            lr=self.lr,
            weight_decay=self.weight_decay,
            milestones=milestones,
            scheduler=self.scheduler,
            schedule_unit=self.schedule_unit,
            warmup_fraction=self.warmup_fraction,
        )

    def identity(self) -> dict[str, Any]:
        """The result-relevant part of the configuration (what the detector id hashes)."""
        defaults = {f.name: f.default for f in fields(self) if f.name in _IN_ID_WHEN_SET}
        return {
            k: v for k, v in asdict(self).items() if k not in _NOT_IN_ID and not (k in defaults and v == defaults[k])
        }
