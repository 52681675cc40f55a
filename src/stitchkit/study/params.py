"""The parameters of each unit kind as a typed record: the plan fills one from the config and the unit
kind reads it back, so every default is stated once (the config schema's, :data:`~.config.SCHEMA`).

A unit's identity is the hash of ``record.to_params()`` (:class:`~.units.Unit`), so the dict must stay
exactly what existing studies stored: a field marked ``present_if`` is left out of it unless its
predicate holds (a DM unit has no training options, ``amp`` appears only when on, ``dm_solver`` only
when not the default), and :meth:`UnitParams.from_params` gives a missing field its default.

The augmentation fields hold what the images fed through a network actually get (the plan resolves
``[section] augment`` by the network's record, :mod:`stitchkit.data.augmentation`), and appear only where
that differs from what every unit trained on before they existed: TLM and detector pre-training on the
dataset's default augmentation, probes and the detectors' fine-tuning ID half on none. So a unit's id
changes exactly when its training images do.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar

from .config import SCHEMA


def _default(section: str, key: str) -> Any:
    return SCHEMA[section][key].default


def _present_if(predicate: Callable[[Any], bool], default: Any, kw_only: bool = False) -> Any:
    """A field stored only when ``predicate(record)`` holds (absent: ``default``)."""
    return field(default=default, metadata={"present_if": predicate}, kw_only=kw_only)


def _if_set(section: str, key: str, when: Callable[[Any], bool] = lambda p: True, *, name: str | None = None, kw_only: bool = False) -> Any:
    """A field (``name``, default ``key``) stored only when it differs from the schema's default of
    ``section.key`` and ``when(record)`` holds."""
    default = _default(section, key)
    return _present_if(lambda p: when(p) and getattr(p, name or key) != default, default, kw_only)


@dataclass(frozen=True)
class UnitParams:
    """Base of the records: conversion to and from the stored parameter dict."""

    kind: ClassVar[str] = ""

    def to_params(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            present = f.metadata.get("present_if")
            if present is None or present(self):
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_params(cls, params: dict[str, Any]):
        names = {f.name for f in fields(cls)}
        unknown = set(params) - names
        if unknown:
            raise ValueError(f"{cls.kind} unit: unknown parameter(s) {sorted(unknown)}")
        missing = [f.name for f in fields(cls) if f.name not in params and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise ValueError(f"{cls.kind} unit: missing parameter(s) {missing}")
        return cls(**params)


@dataclass(frozen=True)
class TrainParams(UnitParams):
    kind: ClassVar[str] = "train"
    model: str
    options: dict[str, Any]
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    momentum: float
    scheduler: str
    milestones: list[int]
    augment: bool
    train_subset: int | None
    dataset: str
    seed: int
    schedule_unit: str = _if_set("networks", "schedule_unit")
    warmup_fraction: float = _if_set("networks", "warmup_fraction")


@dataclass(frozen=True)
class NetworkParams(UnitParams):
    kind: ClassVar[str] = "network"
    # where the checkpoint was found: not part of the unit's identity (its content hash is), so a study
    # stays finished when it, the checkpoints or the checkout move
    path: str = field(metadata={"identity": False})
    sha256: str
    dataset: str
    model: str
    options: dict[str, Any]


def _trains(p: "StitchParams") -> bool:
    return p.method != "dm"


@dataclass(frozen=True)
class StitchParams(UnitParams):
    kind: ClassVar[str] = "stitch"
    dataset: str
    seed: int
    method: str
    front_layers: list[str]
    end_layers: list[str]
    type: str
    fit_samples: int
    eval_samples: int | None
    # the training options of TLM and TLM from DM (a DM unit trains no epochs and has none of them)
    epochs: int = _present_if(_trains, 0)
    batch_size: int = _present_if(_trains, _default("stitching", "batch_size"))
    lr: float = _present_if(_trains, _default("stitching", "lr"))
    weight_decay: float = _present_if(_trains, _default("stitching", "weight_decay"))
    train_subset: int | None = _present_if(_trains, _default("stitching", "train_subset"))
    # only when set / not the default, so that the units of existing studies keep their identities
    amp: bool = _present_if(lambda p: _trains(p) and p.amp, _default("stitching", "amp"))
    dm_solver: str = _present_if(lambda p: p.method != "tlm" and p.dm_solver != _default("stitching", "dm_solver"),
                                 _default("stitching", "dm_solver"))
    scheduler: str = _if_set("stitching", "scheduler", _trains)
    schedule_unit: str = _if_set("stitching", "schedule_unit", _trains)
    warmup_fraction: float = _if_set("stitching", "warmup_fraction", _trains)
    # False: TLM trains on un-augmented images where the dataset has an augmentation (e.g. networks trained without)
    augment: bool = _present_if(lambda p: _trains(p) and not p.augment, True)


@dataclass(frozen=True)
class DetectorsParams(UnitParams):
    kind: ClassVar[str] = "detectors"
    dataset: str
    seed: int
    detector: str
    options: dict[str, Any]
    layers: list[str]
    outliers: str
    finetune_id: str | None
    pretrain_epochs: int
    finetune_epochs: int
    batch_size: int
    train_subset: int | None
    scheduler: str = _if_set("ood", "scheduler")
    schedule_unit: str = _if_set("ood", "schedule_unit")
    warmup_fraction: float = _if_set("ood", "warmup_fraction")
    # pre-training on un-augmented images (False) / the fine-tuning ID half on augmented ones (True)
    augment: bool = _present_if(lambda p: not p.augment, True)
    finetune_id_augment: bool = _present_if(lambda p: p.finetune_id_augment, False)


@dataclass(frozen=True)
class OodParams(UnitParams):
    kind: ClassVar[str] = "ood"
    dataset: str
    seed: int
    training_free: list[str]
    sanity: str | None
    eval_samples: int | None
    energy: bool


@dataclass(frozen=True)
class SimilarityParams(UnitParams):
    kind: ClassVar[str] = "similarity"
    dataset: str
    seed: int
    measures: list[str]
    n_samples: int
    policy: str
    layers: list[str]
    # the indices' intervals and permutation null (issue 19): stored only when on, so that a similarity unit
    # with uncertainty off keeps the id it had before they existed; level and seed only beside one of them
    bootstrap: int = _present_if(lambda p: p.bootstrap > 0, 0)
    permutations: int = _present_if(lambda p: p.permutations > 0, 0)
    level: float = _present_if(lambda p: p.bootstrap > 0 and p.level != _default("uncertainty", "level"), _default("uncertainty", "level"))
    uncertainty_seed: int = _present_if(lambda p: (p.bootstrap > 0 or p.permutations > 0) and p.uncertainty_seed != 0, 0)


@dataclass(frozen=True)
class ProbesParams(UnitParams):
    kind: ClassVar[str] = "probes"
    dataset: str
    seed: int
    layers: list[str]
    ranks: list[int]
    epochs: int
    train_subset: int | None
    scheduler: str = _if_set("probes", "scheduler")
    schedule_unit: str = _if_set("probes", "schedule_unit")
    warmup_fraction: float = _if_set("probes", "warmup_fraction")
    augment: bool = _present_if(lambda p: p.augment, False)  # True: the probes train on augmented images


@dataclass(frozen=True)
class _RankingTestParams(UnitParams):
    """What the sensitivity and specificity tests share: the measures, how their activations are
    taken, and the probes that give the functional differences."""

    dataset: str
    seed: int
    measures: list[str]
    n_samples: int
    policy: str
    probe_epochs: int
    probe_train_subset: int | None
    fit_samples: int
    # the probes' schedule (keyword-only: the subclasses' fields come after these defaults)
    probe_scheduler: str = _if_set("probes", "scheduler", name="probe_scheduler", kw_only=True)
    probe_schedule_unit: str = _if_set("probes", "schedule_unit", name="probe_schedule_unit", kw_only=True)
    probe_warmup_fraction: float = _if_set("probes", "warmup_fraction", name="probe_warmup_fraction", kw_only=True)
    # per network (in the order of the dependencies): its probes train on augmented images; the
    # reference's tlm_accuracy trains on its dataset's default augmentation (or the same images)
    probe_augment: list[bool] | None = _present_if(lambda p: any(p.probe_augment or ()), None, kw_only=True)
    tlm_augment: list[bool] | None = _present_if(lambda p: "tlm_accuracy" in p.measures and not all(p.tlm_augment or ()), None,
                                                 kw_only=True)


@dataclass(frozen=True)
class SensitivityParams(_RankingTestParams):
    kind: ClassVar[str] = "sensitivity"
    layer: str
    ranks: list[int]


@dataclass(frozen=True)
class SpecificityParams(_RankingTestParams):
    kind: ClassVar[str] = "specificity"
    reference_layer: str
    layers: list[str]


def identity(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a ``kind`` unit that make its identity: all but the fields its record marks
    ``identity=False`` (locations of inputs whose content is identified otherwise)."""
    record = PARAMS.get(kind)
    if record is None:
        return params
    located = {f.name for f in fields(record) if f.metadata.get("identity") is False}
    return {k: v for k, v in params.items() if k not in located} if located else params


#: the record of each built-in unit kind
PARAMS: dict[str, type[UnitParams]] = {cls.kind: cls for cls in (TrainParams, NetworkParams, StitchParams, DetectorsParams, OodParams,
                                                                   SimilarityParams, ProbesParams, SensitivityParams, SpecificityParams)}
