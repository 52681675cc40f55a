"""What the model registry holds, without building anything: names, families, options, descriptions
(the options' schema is :mod:`.options`).

Every family is declared once, at its build function in :mod:`stitchkit.models.families`
(``@declare("model_family", FAMILY, title=…, members={NAME: …}, options=…)``, :data:`FAMILY_METADATA`);
this module reads those declarations without importing them (:func:`stitchkit.declarations.catalogue`),
so neither torch nor the architectures load and ``stitchkit models`` and every parser stay fast.
:mod:`stitchkit.models.registry` pairs each :class:`ModelInfo` with its family's build function
(``build_args`` are the fixed keyword arguments that make, e.g., ResNet-50 out of the CIFAR ResNet
builder).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..declarations import Declaration, DeclarationError, catalogue
from ..errors import StitchkitError
from .options import EXTERNAL_OPTIONS, Option, option_from

TORCHVISION_PREFIX = "torchvision:"
TIMM_PREFIX = "timm:"

# --------------------------------------------------------------------------------------------------
# the catalogue


@dataclass(frozen=True)
class ModelInfo:
    """One architecture as the registry lists it. ``builder`` names the registry's build function
    (default: the family); ``build_args`` are fixed keyword arguments of that builder; ``own`` marks the
    zoo's own implementations (which set ``stitchable_layers``)."""

    name: str
    family: str
    options: Mapping[str, Option] = field(default_factory=dict)
    description: str = ""
    default_input_size: tuple[int, int] = (32, 32)
    own: bool = True
    build_args: Mapping[str, Any] = field(default_factory=dict)
    builder: str = ""

    @property
    def builder_name(self) -> str:
        return self.builder or self.family

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``given`` against the options and fill in the defaults."""
        unknown = [k for k in given if k not in self.options]
        if unknown:
            hint = ""
            if unknown[0] == "weights":
                hint = (
                    " (local weights load into torchvision: and timm: models; "
                    "the zoo's own models load from a checkpoint)"
                )
            if self.options:
                known = "; ".join(f"{k} ({o.allowed()}, default {o.default!r})" for k, o in self.options.items())
                raise StitchkitError(f"model {self.name!r} has no option {unknown[0]!r}{hint}; its options: {known}")
            raise StitchkitError(f"model {self.name!r} has no option {unknown[0]!r}{hint}; it takes no options")
        out = {}
        for k, opt in self.options.items():
            out[k] = opt.validate(self.name, k, given[k]) if k in given else copy.deepcopy(opt.default)
        return out


def resnet18_variant(name: str) -> ModelInfo | None:
    """``resnet18_<word>_<word>`` with the words of a declared ResNet-18 variant in another order (e.g.
    ``resnet18_samesize_samewidth``): that variant under this name; None when no variant has these words."""
    words = name.removeprefix("resnet18_").split("_")
    variants = {frozenset(n.split("_")[1:]): info for n, info in models().items() if n.startswith("resnet18_")}
    if len(set(words)) != len(words) or frozenset(words) not in variants:
        return None
    return replace(variants[frozenset(words)], name=name)


def resnet18_words() -> list[str]:
    """The words a ResNet-18 variant's name combines (those of the declared one-word variants)."""
    words = [n.removeprefix("resnet18_") for n in models() if n.startswith("resnet18_")]
    return [w for w in words if "_" not in w]


def external_info(name: str, family: str, build_args: Mapping[str, Any], description: str) -> ModelInfo:
    """A ``torchvision:<name>`` or ``timm:<name>`` architecture (ImageNet-sized by default)."""
    return ModelInfo(
        name,
        family,
        EXTERNAL_OPTIONS,
        description,
        default_input_size=(224, 224),
        own=False,
        build_args=dict(build_args),
    )


#: marks the metadata a family must declare
REQUIRED = object()

#: a model family's declaration metadata (``@declare("model_family", FAMILY, **metadata)`` in
#: :mod:`stitchkit.models.families`) → its default. ``members`` maps each model's name to its spec
#: (:data:`MEMBER_KEYS`); ``options`` is a dict of option name → the :class:`Option`'s fields, or a tuple
#: of such dicts (merged in order); ``description`` is formatted with the member's ``args``, its options'
#: defaults and ``size``; a member name with ``{size}`` is one model per entry of ``sizes`` (size word →
#: option defaults)
FAMILY_METADATA: dict[str, Any] = {
    "title": REQUIRED,
    "members": REQUIRED,
    "options": {},
    "description": "",
    "input_size": (32, 32),
    "own": True,
    "sizes": None,
    "order": None,
}
#: a member's spec: build arguments, and what it changes of the family's description, options, option
#: defaults and input size
MEMBER_KEYS = ("args", "description", "options", "defaults", "input_size")


def _options(given: Any, defaults: Mapping[str, Any], where: str) -> dict[str, Option]:
    specs: dict[str, Any] = {}
    for group in (given,) if isinstance(given, Mapping) else given:
        specs.update(group)
    unknown = [k for k in defaults if k not in specs]
    if unknown:
        raise DeclarationError(
            f"{where}: a default for {unknown[0]!r}, which is not one of its options ({', '.join(specs)})"
        )
    return {
        k: option_from({**spec, **({"default": defaults[k]} if k in defaults else {})}, f"{where}, option {k!r}")
        for k, spec in specs.items()
    }


def _family_members(decl: Declaration) -> list[ModelInfo]:
    unknown = sorted(set(decl.meta) - set(FAMILY_METADATA))
    missing = [key for key, default in FAMILY_METADATA.items() if default is REQUIRED and key not in decl.meta]
    if unknown or missing:
        problem = f"has no metadata {unknown[0]!r}" if unknown else f"needs {missing[0]!r}"
        raise DeclarationError(
            f"model family {decl.name!r} ({decl.source}) {problem}; its metadata: {', '.join(FAMILY_METADATA)}"
        )
    meta = {**FAMILY_METADATA, **decl.meta}
    out = []
    for template, spec in meta["members"].items():
        where = f"model {template!r} of family {decl.name!r} ({decl.source})"
        if set(spec) - set(MEMBER_KEYS):
            wrong = sorted(set(spec) - set(MEMBER_KEYS))[0]
            raise DeclarationError(f"{where}: no member key {wrong!r}; its keys: {', '.join(MEMBER_KEYS)}")
        sizes = meta["sizes"] if "{size}" in template else {None: {}}
        for size, row in (sizes or {}).items():
            options = _options(spec.get("options", meta["options"]), {**row, **spec.get("defaults", {})}, where)
            args = dict(spec.get("args", {}))
            fields = {**args, **{k: o.default for k, o in options.items()}, "size": size}
            out.append(
                ModelInfo(
                    name=template.format(size=size),
                    family=decl.name,
                    options=options,
                    description=spec.get("description", meta["description"]).format(**fields),
                    default_input_size=tuple(spec.get("input_size", meta["input_size"])),
                    own=meta["own"],
                    build_args=args,
                )
            )
    return out


# id of a family's declaration -> (the declaration, its models), so that each model's info is made once
_FAMILIES: dict[int, tuple[Declaration, list[ModelInfo]]] = {}


def models() -> dict[str, ModelInfo]:
    """Every declared architecture by name, family by family: the declarations of
    :mod:`stitchkit.models.families` (read without importing them, so without torch) and those made at run time."""
    out: dict[str, ModelInfo] = {}
    for decl in catalogue("model_family").values():
        known = _FAMILIES.get(id(decl))
        if known is None or known[0] is not decl:
            known = _FAMILIES[id(decl)] = (decl, _family_members(decl))
        for info in known[1]:
            if info.name in out:
                raise DeclarationError(
                    f"model {info.name!r} is declared by families {out[info.name].family!r} and {decl.name!r}"
                )
            out[info.name] = info
    return out


def family_title(family: str) -> str:
    """How listings head a family: its declared ``title`` (else its name)."""
    known = catalogue("model_family")
    return known[family].get("title", family) if family in known else family


def describe_models(entries: Iterable[Any] | None = None) -> str:
    """A readable list of the families, their names and options (``entries``: anything with ``name``,
    ``family`` and ``options``; default the catalogue)."""
    by_family: dict[str, list[Any]] = {}
    for e in models().values() if entries is None else entries:
        by_family.setdefault(e.family, []).append(e)
    lines = []
    for fam, members in by_family.items():
        opts = ", ".join(f"{k}={o.default!r}" for k, o in members[0].options.items())
        lines.append(
            f"{family_title(fam)}: {', '.join(e.name for e in members)}" + (f"  [options: {opts}]" if opts else "")
        )
    external = ", ".join(EXTERNAL_OPTIONS)
    lines.append(f"any torchvision classification model: {TORCHVISION_PREFIX}<name>  [options: {external}]")
    lines.append(f"any timm model: {TIMM_PREFIX}<name> (other vit… names also go to timm)  [options: {external}]")
    return "\n".join(lines)
