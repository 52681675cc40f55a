"""Checks of numbers a user gives: hyperparameters that must be finite, and seeds (torch-free: the
settings records and the CLI's parsers use them before anything is computed or written)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from ..errors import StitchkitError

#: seeds are what every generator stitchkit seeds accepts (torch.manual_seed takes 64 bits)
SEED_LIMIT = 2**64


def is_finite_number(value: Any) -> bool:
    """A real number (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_finite(named: Mapping[str, Any]) -> None:
    """Refuse a NaN, an infinity or a non-number among ``named`` (what each is → its value); None is left
    to the caller (an option that is off)."""
    for what, value in named.items():
        if value is not None and not is_finite_number(value):
            raise StitchkitError(f"{what} must be a finite number, got {value!r}")


def check_seed(seed: Any, what: str = "seed") -> int:
    """The seed, refused unless it is an integer in [0, 2**64) (a string, a float or a bool is not)."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise StitchkitError(f"{what} must be an integer, got {seed!r} ({type(seed).__name__}); e.g. {what}=0")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise StitchkitError(
            f"{what} must be an integer from 0 to 2**64 - 1 (what the random generators take), got {seed}"
        )
    return int(seed)
