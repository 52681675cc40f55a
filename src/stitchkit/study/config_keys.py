"""The study config's key machinery: a :class:`Key` declares one key (type, default, allowed values,
help, check), with the checks and the key groups that several sections share (the unit kinds'
``SECTION`` dicts in :mod:`stitchkit.study.unit_kinds` and :mod:`.config_sections` are built from them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..choices import SCHEDULE_UNITS, SCHEDULERS
from ..declarations import LiveNames


@dataclass(frozen=True)
class Key:
    type: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None  # allowed values (for lists: allowed elements)
    check: Callable[[Any], bool] | None = None
    check_text: str = ""


def positive(v: Any) -> bool:
    return v > 0


def non_negative(v: Any) -> bool:
    return v >= 0


def unit_fraction(v: Any) -> bool:
    return 0 < v <= 1


def probability(v: Any) -> bool:
    return 0 <= v <= 1


def below_one(v: Any) -> bool:
    return 0 <= v < 1


def count_or_none(v: Any) -> bool:
    return v is None or v >= 1


#: a sample count or subset size that may be left out (None: all)
COUNT = {"check": count_or_none, "check_text": 'must be ≥ 1 (or "none" for all)'}


PAIRINGS = ("reference", "first", "all", "self", "reference_and_self", "first_and_self")
#: the stitch command's types (the declared stitching-layer types), ``auto`` first; read when the schema is used
STITCH_TYPES = LiveNames("stitching_layer", first=("auto",))


def schedule_keys(what: str, none: str) -> dict[str, Key]:
    """The :data:`SCHEDULE_KEYS` of a section, for the training of ``what`` (``none``: what the default does)."""
    return {
        "scheduler": Key(
            str,
            "none",
            f"LR schedule of {what} (none: {none}; see `stitchkit train --help`); onecycle needs "
            'schedule_unit = "step" and a warmup_fraction',
            choices=tuple(SCHEDULERS),
        ),
        "schedule_unit": Key(
            str,
            "epoch",
            "when that schedule advances: epoch (the original's) or step (after every optimizer step)",
            choices=tuple(SCHEDULE_UNITS),
        ),
        "warmup_fraction": Key(
            (int, float),
            0.0,
            'with schedule_unit = "step": warm up over the first round(fraction·T) of the '
            "T = epochs × batches optimizer steps",
            check=below_one,
            check_text="must be in [0, 1)",
        ),
    }
