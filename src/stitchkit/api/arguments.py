"""The Python API's arguments checked against their declared types, before any work.

A notebook passes what it has: ``seed="1"`` from a widget, ``n_samples=1e3``, ``fit_samples=20.5``.
Unchecked, these fail far away (``manual_seed expected a long``, ``slice indices must be integers``)
or run with a value nobody asked for. :func:`check_types` reads the declared types of a function's
parameters or a settings dataclass's fields and refuses a value of another type, naming the argument.
Only numbers and flags are checked (``int``, ``float``, ``bool`` and their ``| None``); an argument
declared otherwise (strings, which are often given as paths or ``torch.device``, ``Any``, sequences,
models, data) is left to the code that uses it.
"""

from __future__ import annotations

import numbers
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import StitchkitError


class ArgumentTypeError(StitchkitError, TypeError):
    """An argument of the wrong type (a ``TypeError`` too, as Python's own would be)."""


_WORDS = {int: "an integer", float: "a number", bool: "True or False"}


def check_types(declared_by: Callable | type, values: Mapping[str, Any], what: str) -> None:
    """Refuse any of ``values`` whose type is not the one ``declared_by`` (a function or a dataclass)
    declares for it; ``what`` names the function for the message (``stitchkit.compare``)."""
    hints = _hints(declared_by)
    for name, value in values.items():
        allowed = _plain_types(hints.get(name))
        if allowed is None or (value is None and type(None) in allowed):
            continue
        if not any(_is(value, t) for t in allowed if t is not type(None)):
            words = " or ".join(_WORDS[t] for t in allowed if t is not type(None)) + (
                " or None" if type(None) in allowed else ""
            )
            raise ArgumentTypeError(f"{what}: {name} must be {words}, got {_shown(value)}")


def _hints(declared_by: Callable | type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(declared_by)
    except (NameError, TypeError):  # a hint that cannot be evaluated: check nothing rather than fail
        return {}


def _plain_types(hint: Any) -> tuple[type, ...] | None:
    """``hint`` as a tuple of plain types, or None when it is (or includes) anything else."""
    if hint is None:
        return None
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if all(m in _WORDS or m is type(None) for m in members):
        return tuple(members)
    return None


def _is(value: Any, kind: type) -> bool:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return kind is bool
    if kind is bool:
        return isinstance(value, numbers.Integral) and value in (0, 1)
    if kind is int:
        return isinstance(value, numbers.Integral)
    if kind is float:
        return isinstance(value, numbers.Real)
    return False  # pragma: no cover - _WORDS lists the kinds


def _shown(value: Any) -> str:
    return f"the {type(value).__name__} {value!r}"


__all__ = ["ArgumentTypeError", "check_types"]
