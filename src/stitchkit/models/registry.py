"""The model registry: every architecture by name, with validated options.

Names are the original system's (spec §2): ``resnet18`` … ``resnet152``, ``resnet18_samewidth``,
``resnet18_samesize``, ``wide_resnet50_2``, ``resnext50_32x4d``, ``preact_resnet18``,
``wide_resnet_28_10``, ``liu2020_wrn``, ``small_cnn``, ``vit_tiny_patch4_32`` …,
``repr_cls_resnet18`` …, ``repr_cls_vit_tiny`` …, ``tv_resnet18`` …; plus ``torchvision:<name>`` and
``timm:<name>`` for any torchvision or timm architecture, and any other ``vit…`` name through timm.

Unlike the original's string dispatch, an unknown name or option raises a
:class:`~stitchkit.errors.StitchkitError` that lists the valid choices.

Every model built by :func:`get_model` records how it was built in ``model.stitchkit_spec`` (a JSON
dict ``{name, num_classes, in_channels, input_size, options}``) so that a checkpoint can rebuild it with
:func:`build_from_spec`. The zoo's own models also carry ``stitchable_layers``, the names (as in
``named_modules()``) of their stitchable layers in forward order; each is a valid cut (no skip
connection spans it).

Each family is declared once, at its build function in :mod:`stitchkit.models.families`, with its
models' names, options and descriptions; :mod:`stitchkit.models.catalog` reads the declarations
torch-free (the options' schema is :mod:`stitchkit.models.options`), and this module pairs each
catalogued model with its family's declared build function
(:func:`stitchkit.declarations.implementation`), looks names up and builds. Adding a family is adding
one module to :mod:`stitchkit.models.families`; adding a model to a family is one entry in its
``members`` (or, at run time, one :class:`ModelEntry` with :func:`register_model`).
"""

from __future__ import annotations

import difflib
import functools
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from ..declarations import implementation
from ..errors import StitchkitError, UnknownNameError
from . import catalog, external
from .catalog import TIMM_PREFIX, TORCHVISION_PREFIX, ModelInfo
from .input_check import check_input, expected_input_shape


@dataclass(frozen=True)
class ModelEntry(ModelInfo):
    """A catalogued architecture with its build function:
    ``build(num_classes=, in_channels=, input_size=(H, W), **options)`` returns the module."""

    build: Callable[..., nn.Module] | None = None


# architectures registered at run time with :func:`register_model` (the declared ones are in the catalogue)
_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add an architecture to the registry (a name can be registered once)."""
    if entry.name in _REGISTRY or entry.name in catalog.models():
        raise ValueError(f"model {entry.name!r} is already registered")
    if entry.name.startswith((TORCHVISION_PREFIX, TIMM_PREFIX)):
        raise ValueError(f"{entry.name!r} uses a reserved prefix")
    if not callable(entry.build):
        raise ValueError(f"model {entry.name!r} has no build function")
    _REGISTRY[entry.name] = entry
    return entry


def _build_torchvision(num_classes, in_channels, input_size, *, tv_name, pretrained, weights, kwargs):
    return external.build_torchvision(
        tv_name, num_classes, in_channels, pretrained=pretrained, weights=weights, kwargs=kwargs
    )


def _build_timm(num_classes, in_channels, input_size, *, timm_name, pretrained, weights, kwargs):
    return external.build_timm(
        timm_name, num_classes, in_channels, pretrained=pretrained, weights=weights, kwargs=kwargs
    )


#: the build functions of the prefixed names (``torchvision:<name>``, ``timm:<name>``); every other
#: architecture is built by its family's declared function
PREFIX_BUILDERS: dict[str, Callable[..., nn.Module]] = {"torchvision": _build_torchvision, "timm": _build_timm}


def family_builder(info: ModelInfo) -> Callable[..., nn.Module]:
    """The build function of ``info``'s family: declared in :mod:`stitchkit.models.families` (imported
    on first use), or a prefix's."""
    if info.builder_name in PREFIX_BUILDERS:
        return PREFIX_BUILDERS[info.builder_name]
    return implementation("model_family", info.builder_name)


def _entry(info: ModelInfo) -> ModelEntry:
    fields = {f: getattr(info, f) for f in info.__dataclass_fields__}
    return ModelEntry(**fields, build=functools.partial(family_builder(info), **info.build_args))


def _known() -> dict[str, ModelInfo]:
    """Every architecture by name: the declared ones, then those registered at run time."""
    return {**catalog.models(), **_REGISTRY}


# --------------------------------------------------------------------------------------------------
# lookup


def _unknown_model(name: str) -> UnknownNameError:
    known = list(_known())
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return UnknownNameError(
        f"unknown model {name!r}{hint}; known models: {', '.join(known)}; "
        f"also '{TORCHVISION_PREFIX}<name>' for any torchvision classification model and "
        f"'{TIMM_PREFIX}<name>' for any timm model"
    )


def model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` for ``name`` (registered, prefixed or a resnet18/timm-ViT variant)."""
    if not isinstance(name, str):
        raise StitchkitError(f"a model name must be a string, got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    declared = catalog.models()
    if name in declared:
        return _entry(declared[name])
    if name.startswith(TORCHVISION_PREFIX):
        tv = name[len(TORCHVISION_PREFIX) :]
        external.check_torchvision_name(tv)
        return _entry(catalog.external_info(name, "torchvision", {"tv_name": tv}, f"torchvision {tv}"))
    if name.startswith(TIMM_PREFIX):
        tm = name[len(TIMM_PREFIX) :]
        external.check_timm_name(tm)
        return _entry(catalog.external_info(name, "timm", {"timm_name": tm}, f"timm {tm}"))
    if re.fullmatch(r"resnet18_(\w+)", name):
        variant = catalog.resnet18_variant(name)
        if variant is not None:
            return _entry(variant)
        raise StitchkitError(
            f"unknown model {name!r}: a resnet18_<suffix> name combines the words "
            f"{', '.join(catalog.resnet18_words())} joined by '_' (e.g. resnet18_samewidth_samesize)"
        )
    if name.startswith("vit") and external.is_timm_name(name):
        # the original sends every other vit… name to timm (spec §2.1 rule 4)
        return _entry(catalog.external_info(name, "timm", {"timm_name": name}, f"timm {name}"))
    raise _unknown_model(name)


def is_known_model(name: str) -> bool:
    """Whether :func:`get_model` accepts ``name`` (builds nothing)."""
    try:
        model_entry(name)
    except StitchkitError:
        return False
    return True


def list_models() -> list[str]:
    """Every registered name, family by family. ``torchvision:<name>``, ``timm:<name>`` and other
    ``vit…`` timm names are accepted too (see :func:`describe_models`)."""
    return list(_known())


def model_options(name: str) -> dict[str, Any]:
    """The options ``name`` accepts, with their defaults."""
    return model_entry(name).resolve_options({})


def describe_models() -> str:
    """A readable list of the families, their names and options (for ``--help``), including
    architectures registered at run time."""
    return catalog.describe_models(_known().values())


# --------------------------------------------------------------------------------------------------
# building


def _check_positive_int(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise StitchkitError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _input_size(value: Any, default: tuple[int, int]) -> tuple[int, int]:
    if value is None:
        return default
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise StitchkitError(f"input_size must be an integer or a pair (H, W), got {value!r}")
    h, w = (_check_positive_int("input_size", v) for v in value)
    return (h, w)


def get_model(
    name: str,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int | tuple[int, int] | None = None,
    **options: Any,
) -> nn.Module:
    """Build the architecture ``name`` (untrained unless an external model gets ``pretrained=True``).

    Args:
        name: a name from :func:`list_models`, ``torchvision:<name>`` or ``timm:<name>``.
        num_classes: outputs of the classifier.
        in_channels: input channels (for ``repr_cls_*``: the activation's channels / token dim).
        input_size: the input image size, an int or (H, W). ``None`` means the name's natural size
            (224 for ``*_224`` ViTs and ImageNet models, else 32). ViTs size their positional
            embedding by it; ``repr_cls_resnet*`` resize activations to it (the source network's
            input size); the convolutional networks pool globally and accept any size.
        **options: see :func:`model_options`.

    The result has ``stitchkit_spec`` (for :func:`build_from_spec`) and, for the zoo's own models
    and torchvision ResNets, ``stitchable_layers``.
    """
    entry = model_entry(name)
    num_classes = _check_positive_int("num_classes", num_classes)
    in_channels = _check_positive_int("in_channels", in_channels)
    size = _input_size(input_size, entry.default_input_size)
    resolved = entry.resolve_options(options)
    model = entry.build(num_classes=num_classes, in_channels=in_channels, input_size=size, **resolved)
    if not entry.own and input_size is None:  # a library's model: its own size (timm's *_384)
        expected = expected_input_shape(model)
        size = tuple(expected[1:]) if expected else size
    if not entry.builder_name.startswith("repr_cls"):  # (the detectors' classifiers take activations, not images)
        # an image model takes inputs of its size, or stops here in one sentence (a timm ViT for 224
        # pixels on 28-pixel data, a small CNN on 3-pixel images) instead of mid-training
        check_input(model, name, (in_channels, *size))
    if entry.own:
        layers = getattr(model, "stitchable_layers", None)
        names = dict(model.named_modules())
        missing = [n for n in layers or () if n not in names]
        if not layers or missing:  # a bug in the zoo, not a user error
            raise RuntimeError(f"model {name!r} has invalid stitchable_layers (missing {missing})")
    model.stitchkit_spec = {
        "name": name,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "input_size": [size[0], size[1]],
        "options": resolved,
    }
    return model


SPEC_KEYS = ("name", "num_classes", "in_channels", "input_size", "options")


def build_from_spec(spec: Mapping[str, Any], *, download_weights: bool = False) -> nn.Module:
    """Rebuild the architecture described by a ``stitchkit_spec`` dict (e.g. from a checkpoint).

    Pretrained weights are neither downloaded again nor read from a local ``weights`` file (the
    checkpoint holds the weights) unless ``download_weights``; the returned model's ``stitchkit_spec``
    equals ``spec``.
    """
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise StitchkitError(
            f"a model spec must be a dict with at least 'name' (keys {', '.join(SPEC_KEYS)}), got {spec!r}"
        )
    extra = [k for k in spec if k not in SPEC_KEYS]
    if extra:
        raise StitchkitError(f"unknown key {extra[0]!r} in a model spec; known keys: {', '.join(SPEC_KEYS)}")
    options = dict(spec.get("options") or {})
    if not download_weights:  # the weights come from the checkpoint, not from a download or a local file
        if options.get("pretrained"):
            options["pretrained"] = False
        if options.get("weights"):
            options["weights"] = None
    input_size = spec.get("input_size")
    model = get_model(
        spec["name"],
        num_classes=spec.get("num_classes", 10),
        in_channels=spec.get("in_channels", 3),
        input_size=tuple(input_size) if isinstance(input_size, list) else input_size,
        **options,
    )
    model.stitchkit_spec["options"] = model_entry(spec["name"]).resolve_options(dict(spec.get("options") or {}))
    return model
