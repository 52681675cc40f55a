"""The option schema of the model registry: what one model option is (:class:`Option`: default, kind,
allowed values, validation) and the options several families share. Torch-free, like the catalogue."""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import StitchkitError


@dataclass(frozen=True)
class Option:
    """One user-settable option of a model: its default, kind and allowed values.

    ``kind`` is one of ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"floats"`` (a list of numbers)
    or ``"dict"`` (JSON-serialisable keyword arguments). ``None`` is allowed when ``nullable``.
    """

    default: Any
    kind: str
    help: str
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    exclusive_minimum: bool = False
    maximum: float | None = None

    def allowed(self) -> str:
        """The allowed values in words, for error messages and ``--help``."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind in ("int", "float"):
            text = "an integer" if self.kind == "int" else "a number"
            if self.minimum is not None:
                text += f" {'>' if self.exclusive_minimum else '≥'} {self.minimum:g}"
            if self.maximum is not None:
                text += f"{' and' if self.minimum is not None else ''} ≤ {self.maximum:g}"
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "floats":
            text = "a list of numbers"
        elif self.kind == "dict":
            text = "a JSON object of keyword arguments"
        else:
            text = "a string"
        return text + (" or None" if self.nullable else "")

    def validate(self, model: str, name: str, value: Any) -> Any:
        """Return ``value`` normalised to plain JSON types, or raise a StitchkitError."""
        if value is None and self.nullable:
            return None

        def bad() -> StitchkitError:
            return StitchkitError(
                f"model {model!r}: option {name!r} must be {self.allowed()} (default {self.default!r}), got {value!r}"
            )

        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad()
            return value
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise bad()
            if self.kind == "int":
                if not isinstance(value, numbers.Integral):
                    raise bad()
                value = int(value)
            else:
                value = float(value)
            if self.minimum is not None and (value <= self.minimum if self.exclusive_minimum else value < self.minimum):
                raise bad()
            if self.maximum is not None and value > self.maximum:
                raise bad()
            return value
        if self.kind == "str":
            if not isinstance(value, str) or (self.choices is not None and value not in self.choices):
                raise bad()
            return value
        if self.kind == "floats":
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise bad()
            vals = list(value)
            if not vals or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in vals):
                raise bad()
            return [float(v) for v in vals]
        if self.kind == "dict":
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise bad()
            try:
                return json.loads(json.dumps(dict(value)))
            except (TypeError, ValueError):
                raise bad() from None
        raise AssertionError(f"unknown option kind {self.kind!r}")


def int_option(default: int, help: str, minimum: int = 1) -> Option:
    return Option(default, "int", help, minimum=minimum)


def option_from(spec: Mapping[str, Any], where: str = "an option") -> Option:
    """The :class:`Option` a declaration writes as a literal dict of its fields (``{"default": 64,
    "kind": "int", "help": "…", "minimum": 1}``); a field that does not exist is refused."""
    known = Option.__dataclass_fields__
    unknown = [k for k in spec if k not in known]
    if unknown or not {"default", "kind", "help"} <= set(spec):
        raise StitchkitError(
            f"{where}: an option is a dict of {', '.join(known)} (default, kind and help required), got {dict(spec)!r}"
        )
    return Option(**{k: tuple(v) if k == "choices" and v is not None else v for k, v in spec.items()})


#: the stage width of the CIFAR-style ResNets
STAGE_WIDTH = {
    "width": {"default": 64, "kind": "int", "help": "base width: stages have width·(1, 2, 4, 8) planes", "minimum": 1},
}
# The options several families share, as the literal dicts their declarations use (read without importing)
ACTIVATION = {
    "activation": {"default": "swish", "kind": "str", "help": "activation function", "choices": ("swish", "relu")},
}
#: the options of every torchvision and timm model
EXTERNAL = {
    "pretrained": {"default": False, "kind": "bool", "help": "download and load pretrained weights (needs internet)"},
    "weights": {
        "default": None,
        "kind": "str",
        "nullable": True,
        "help": "local pretrained weights: a state_dict file (plain, or under 'state_dict' or 'model'; "
        "'module.' prefixes are stripped), loaded like pretrained=true but without a download",
    },
    "kwargs": {"default": {}, "kind": "dict", "help": "extra keyword arguments passed to the library's constructor"},
}

ACTIVATION_OPTION = option_from(ACTIVATION["activation"])
EXTERNAL_OPTIONS = {name: option_from(spec) for name, spec in EXTERNAL.items()}
