"""Training OOD detectors for the layers of a network (the original's
``exec_train_representation_classifier.py``, spec 1.4).

For each requested layer of a frozen *source* network, a representation classifier (``repr_cls_*``)
learns to classify the layer's activations and then becomes an energy-based OOD detector for that
layer's representation space:

1. **Supervised pre-training** (``epochs``): cross-entropy on the source's activations of the train
   split of ``dataset``, validated on the test split. Adam(lr, wd),
   ×0.1 at the epochs in ``reduce_lr_epochs``.
2. **Energy fine-tuning with outlier exposure** (``ft_epochs``; Liu, Wang, Owens & Li, NeurIPS 2020,
   section 3): every batch is half in-distribution (the train split of ``ft_id_dataset``) and half
   auxiliary outliers (the train split of ``ft_ood_dataset``, with its
   flip+crop augmentation, converted to the ID input shape). Each epoch draws
   ``min(|ID|, |OOD|)`` (or ``ft_samples``) fresh, disjoint samples from each set. The loss is
   ``CE(ID) + 0.1·(mean relu(E_in − m_in)² + mean relu(m_out − E_out)²)`` with
   ``E = −logsumexp(logits)``, m_in = −25, m_out = −7 (:func:`energy_finetune_loss`); the ``OE`` score
   uses ``CE(ID) + 0.5·CE(OOD, uniform)`` instead (Hendrycks et al. 2019). A new Adam with the same
   LR; ×0.1 after ``ft_epochs // 2`` epochs.

The images fed through the source network (the pre-training set and the ID half of the fine-tuning)
get the augmentation the source was trained with, as its checkpoint records (``augment="network"``;
the dataset's default when it records nothing; :mod:`stitchkit.data.augmentation`), unless ``augment``
says ``"dataset"`` or ``"none"``; ``ft_id_augment`` overrides it for the ID half.

What is fixed relative to the original (spec 6.1 and 6.2):

* the source network runs frozen, in eval mode, under ``no_grad``, and **only up to the layer**;
  detectors for several layers share **one pass** of the source per batch (:class:`~.bank.DetectorBank`);
* the seed is honoured; ``-d``, ``-m``, ``-ftidd`` have defaults (the source checkpoint's dataset,
  ``repr_cls_resnet18`` / ``repr_cls_vit_tiny`` by activation shape, ``-d``);
* the fine-tuning LR decay is stepped **per epoch**. The original stepped its ``MultiStepLR([fe//2])``
  after every *batch*, so the LR dropped ×0.1 after ``fe//2`` iterations; ``ft_lr_per_batch=True``
  (``--ft-lr-per-batch``) reproduces that. With ``ft_epochs`` < 2 the per-epoch schedule has no decay;
* the logged ``ce_loss`` is the mean CE over the ID samples (the original divided by ID+OOD, about
  half the true value);
* the registry stores the fine-tuning ID set as ``id_dataset`` and identifies the source by content
  hash; ids are deterministic (:mod:`stitchkit.ood.registry`).

Outputs per layer (``save_dir`` itself for one layer, ``save_dir/<layer>`` for several):
``training_logs.csv`` (``train_acc, train_loss, val_acc, val_loss`` + epoch, lr, seconds),
``model_<e>.pt`` every ``save_frequency`` epochs, ``ft_logs.csv`` (``ft_loss, ce_loss, train_acc,
val_ce_loss, val_acc`` + the regulariser, mean ID/OOD energies, lr, seconds), ``ft_model_<e>.pt`` every
fine-tuning epoch (bare state_dicts, as the original), ``config.txt`` (the arguments) and
``config.json`` (the resolved configuration); then ``<final_save_dir>/<id>.pt`` and its
``meta.json`` entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..choices import OOD_SCORES  # torch-free home of the names (the CLI reads them)
from ..data.provenance import note_provenance
from ..models.layers import layered
from ..models.loading import check_model_type, load_for_dataset
from .bank import DetectorBank, TrainedDetector
from .detector_model import build_detector_model, default_detector_type
from .finetune_loss import energy_finetune_loss
from .train_config import DetectorTrainConfig

__all__ = [
    "OOD_SCORES",
    "DetectorBank",
    "DetectorTrainConfig",
    "TrainedDetector",
    "build_detector_model",
    "default_detector_type",
    "energy_finetune_loss",
    "train_detectors",
    "train_detectors_for_checkpoint",
]


def train_detectors(
    source: nn.Module,
    layers: Sequence[str],
    config: DetectorTrainConfig,
    *,
    source_path: str | None = None,
    source_type: str | None = None,
    input_shape: Sequence[int] | None = None,
    argv_config: dict[str, Any] | None = None,
    provenance: dict[str, str] | None = None,
) -> list[TrainedDetector]:
    """Train one OOD detector per layer of ``source``, sharing one source pass per batch.

    ``source`` is a network built by :func:`stitchkit.models.get_model` (its checkpoint path and type
    are recorded in the registry when given). ``input_shape`` is its input (C, H, W); default the
    dataset's. ``provenance``: the conventions entry of a source run on another dataset than its own
    (:func:`stitchkit.data.provenance.note_provenance`). See the module docstring for the phases and outputs.
    """
    bank = DetectorBank(
        source,
        layers,
        config,
        source_path=source_path,
        source_type=source_type,
        input_shape=input_shape,
        argv_config=argv_config,
        provenance=provenance,
    )
    bank.pretrain()
    bank.finetune()
    return bank.publish()


def train_detectors_for_checkpoint(
    source_model_path: str,
    source_model_type: str | None,
    layers: Sequence[str] | str,
    config: DetectorTrainConfig,
    argv_config: dict[str, Any] | None = None,
    source_options: dict[str, Any] | None = None,
) -> list[TrainedDetector]:
    """:func:`train_detectors` for a source checkpoint (``source_model_type`` ``None``/``"-"``/``"auto"``:
    read from a stitchkit checkpoint); ``layers`` may be ``"all"`` (every stitchable layer), a
    comma-separated string or a list. ``config.dataset`` defaults to the checkpoint's dataset."""
    config.validate()  # before the checkpoint is loaded
    check_model_type(source_model_path, source_model_type)
    source, ckpt, info = load_for_dataset(
        source_model_path, source_model_type, dataset=config.dataset, model_options=source_options
    )
    if config.dataset is None:
        config.dataset = ckpt.dataset or "cifar10"
    layers = layered(source).resolve(layers)
    provenance = note_provenance({"": ckpt.dataset}, info.name)
    return train_detectors(
        source,
        layers,
        config,
        source_path=str(source_model_path),
        source_type=source.stitchkit_spec["name"],
        input_shape=info.shape,
        argv_config=argv_config,
        provenance=provenance,
    )
