"""What the parameters of each unit kind are as a typed record (each kind's record is in its module of
:mod:`stitchkit.study.unit_kinds`): the plan fills one from the config and the unit kind reads it back,
so every default is stated once (the config schema's: a kind's own ``SECTION``, or a shared section of
:mod:`.config_sections`).

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

import importlib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from ..declarations import catalogue
from .config_keys import Key


def schema_default(section: Mapping[str, Key], key: str) -> Any:
    """The default of ``key`` in a section of the study schema (its keys: a kind's ``SECTION``)."""
    return section[key].default


def present_if(predicate: Callable[[Any], bool], default: Any, kw_only: bool = False) -> Any:
    """A field stored only when ``predicate(record)`` holds (absent: ``default``)."""
    return field(default=default, metadata={"present_if": predicate}, kw_only=kw_only)


def if_set(
    section: Mapping[str, Key],
    key: str,
    when: Callable[[Any], bool] = lambda p: True,
    *,
    name: str | None = None,
    kw_only: bool = False,
) -> Any:
    """A field (``name``, default ``key``) stored only when it differs from the schema's default of
    ``section.key`` and ``when(record)`` holds."""
    default = schema_default(section, key)
    return present_if(lambda p: when(p) and getattr(p, name or key) != default, default, kw_only)


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
        missing = [
            f.name
            for f in fields(cls)
            if f.name not in params and f.default is MISSING and f.default_factory is MISSING
        ]
        if missing:
            raise ValueError(f"{cls.kind} unit: missing parameter(s) {missing}")
        return cls(**params)


def record_of(kind: str) -> type[UnitParams] | None:
    """The parameter record of a unit kind: the class its declaration names (``record=``) in its module
    (:mod:`stitchkit.study.unit_kinds`, imported without torch); None for a kind without one (a test's own)."""
    known = catalogue("unit_kind").get(kind)
    if known is None or "record" not in known.meta:
        return None
    return getattr(importlib.import_module(known.module), known.meta["record"])


def identity(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a ``kind`` unit that make its identity: all but the fields its record marks
    ``identity=False`` (locations of inputs whose content is identified otherwise)."""
    record = record_of(kind)
    if record is None:
        return params
    located = {f.name for f in fields(record) if f.metadata.get("identity") is False}
    return {k: v for k, v in params.items() if k not in located} if located else params
