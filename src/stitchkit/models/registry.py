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

Adding an architecture is adding one :class:`ModelEntry` with :func:`register_model`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from ..errors import StitchkitError, UnknownNameError
from . import external
from .liu_wrn import LIU_MEAN, LIU_STD, LiuWideResNet
from .preact_resnet import CIFAR10_MEAN, CIFAR10_STD, PreActResNet
from .repr_cls import ReprClsResNet, ReprClsViT
from .resnet_cifar import CifarResNet
from .small_cnn import SmallCNN
from .vit import VIT_SIZES, VisionTransformer
from .wide_resnet import DMWideResNet

TORCHVISION_PREFIX = "torchvision:"
TIMM_PREFIX = "timm:"


# --------------------------------------------------------------------------------------------------
# options


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
            if self.minimum is not None and (
                value <= self.minimum if self.exclusive_minimum else value < self.minimum
            ):
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


def _int(default: int, help: str, minimum: int = 1) -> Option:
    return Option(default, "int", help, minimum=minimum)


ACTIVATION_OPTION = Option("swish", "str", "activation function", choices=("swish", "relu"))
PRETRAINED_OPTION = Option(False, "bool", "download and load pretrained weights (needs internet)")
KWARGS_OPTION = Option({}, "dict", "extra keyword arguments passed to the library's constructor")


def _norm_options(what: str) -> dict[str, Option]:
    return {
        "input_mean": Option(None, "floats", f"per-channel input mean (None: {what})", nullable=True),
        "input_std": Option(None, "floats", f"per-channel input std (None: {what})", nullable=True),
    }


# --------------------------------------------------------------------------------------------------
# entries


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture.

    ``build(num_classes=, in_channels=, input_size=(H, W), **options)`` returns the module.
    ``own`` marks the zoo's own implementations, which must set ``stitchable_layers``.
    """

    name: str
    family: str
    build: Callable[..., nn.Module]
    options: Mapping[str, Option] = field(default_factory=dict)
    description: str = ""
    default_input_size: tuple[int, int] = (32, 32)
    own: bool = True

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``given`` against the entry's options and fill in the defaults."""
        unknown = [k for k in given if k not in self.options]
        if unknown:
            if self.options:
                known = "; ".join(f"{k} ({o.allowed()}, default {o.default!r})" for k, o in self.options.items())
                raise StitchkitError(f"model {self.name!r} has no option {unknown[0]!r}; its options: {known}")
            raise StitchkitError(f"model {self.name!r} has no option {unknown[0]!r}; it takes no options")
        out = {}
        for k, opt in self.options.items():
            out[k] = opt.validate(self.name, k, given[k]) if k in given else copy.deepcopy(opt.default)
        return out


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add an architecture to the registry (a name can be registered once)."""
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is already registered")
    if entry.name.startswith((TORCHVISION_PREFIX, TIMM_PREFIX)):
        raise ValueError(f"{entry.name!r} uses a reserved prefix")
    _REGISTRY[entry.name] = entry
    return entry


# --------------------------------------------------------------------------------------------------
# builders of the zoo's families (each takes num_classes, in_channels, input_size and its options)


def _build_cifar_resnet(num_classes, in_channels, input_size, *, depth, width, groups=1, width_per_group=64,
                        same_width=False, same_size=False):
    return CifarResNet(depth, num_classes, in_channels, width=width, groups=groups, width_per_group=width_per_group,
                       same_width=same_width, same_size=same_size)


def _build_preact(num_classes, in_channels, input_size, *, depth, width, activation, input_mean, input_std):
    return PreActResNet(depth, num_classes, in_channels, width=width, activation=activation,
                        input_mean=input_mean or CIFAR10_MEAN, input_std=input_std or CIFAR10_STD)


def _build_dm_wrn(num_classes, in_channels, input_size, *, depth, width_factor, activation, input_mean, input_std):
    return DMWideResNet(depth, width_factor, num_classes, in_channels, activation=activation,
                        input_mean=input_mean or CIFAR10_MEAN, input_std=input_std or CIFAR10_STD)


def _build_liu_wrn(num_classes, in_channels, input_size, *, width_factor, drop_rate, input_mean, input_std):
    return LiuWideResNet(40, width_factor, num_classes, in_channels, drop_rate=drop_rate,
                         input_mean=input_mean or LIU_MEAN, input_std=input_std or LIU_STD)


def _build_small_cnn(num_classes, in_channels, input_size, *, width):
    return SmallCNN(num_classes, in_channels, width=width)


def _build_vit(num_classes, in_channels, input_size, *, embed_dim, depth, num_heads, patch_size, mlp_ratio):
    return VisionTransformer(input_size, patch_size, in_channels, num_classes, embed_dim=embed_dim, depth=depth,
                             num_heads=num_heads, mlp_ratio=mlp_ratio)


def _build_repr_cls_resnet(num_classes, in_channels, input_size, *, depth, width):
    return ReprClsResNet(depth, num_classes, in_channels, input_size, width=width)


def _build_repr_cls_vit(num_classes, in_channels, input_size, *, embed_dim, depth, num_heads, mlp_ratio):
    return ReprClsViT(in_channels, num_classes, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                      mlp_ratio=mlp_ratio)


def _build_torchvision(num_classes, in_channels, input_size, *, tv_name, pretrained, kwargs):
    return external.build_torchvision(tv_name, num_classes, in_channels, pretrained=pretrained, kwargs=kwargs)


def _build_timm(num_classes, in_channels, input_size, *, timm_name, pretrained, kwargs):
    return external.build_timm(timm_name, num_classes, in_channels, pretrained=pretrained, kwargs=kwargs)


def _vit_options(size: str, patch: int) -> dict[str, Option]:
    d, depth, heads = VIT_SIZES[size]
    return {
        "embed_dim": _int(d, "token dimension D"),
        "depth": _int(depth, "number of transformer blocks"),
        "num_heads": _int(heads, "attention heads (must divide embed_dim)"),
        "patch_size": _int(patch, "patch side in pixels (must divide the input size)"),
        "mlp_ratio": Option(4.0, "float", "MLP hidden size / embed_dim", minimum=0, exclusive_minimum=True),
    }


RESNET18_SUFFIXES = {"samewidth": "same_width", "samesize": "same_size"}


def _resnet18_variant(name: str, words: tuple[str, ...]) -> ModelEntry:
    flags = {RESNET18_SUFFIXES[w]: True for w in words}
    what = " and ".join({"same_width": "every stage `width` channels", "same_size": "every stage stride 1"}[f]
                        for f in flags)
    return ModelEntry(
        name, "cifar_resnet", functools.partial(_build_cifar_resnet, depth=18, **flags),
        {"width": _int(64, "base width (channels of the stem)")},
        f"CIFAR ResNet-18 with {what}",
    )


def _register_builtin() -> None:
    width64 = {"width": _int(64, "base width: stages have width·(1, 2, 4, 8) planes")}
    for depth in (18, 34, 50, 101, 152):
        register_model(ModelEntry(
            f"resnet{depth}", "cifar_resnet", functools.partial(_build_cifar_resnet, depth=depth), width64,
            f"CIFAR ResNet-{depth} (3×3 stem, no max-pool, global average pooling)",
        ))
    for words in (("samewidth",), ("samesize",), ("samewidth", "samesize")):
        register_model(_resnet18_variant("resnet18_" + "_".join(words), words))
    for name, depth, groups, wpg, what in (
        ("wide_resnet50_2", 50, 1, 128, "wide ResNet-50-2"),
        ("wide_resnet101_2", 101, 1, 128, "wide ResNet-101-2"),
        ("resnext50_32x4d", 50, 32, 4, "ResNeXt-50 32×4d"),
        ("resnext101_32x8d", 101, 32, 8, "ResNeXt-101 32×8d"),
    ):
        register_model(ModelEntry(
            name, "cifar_resnet",
            functools.partial(_build_cifar_resnet, depth=depth, groups=groups, width_per_group=wpg), width64,
            f"CIFAR-style {what} (Bottleneck, groups {groups}, width_per_group {wpg})",
        ))
    for depth in (18, 34):
        register_model(ModelEntry(
            f"preact_resnet{depth}", "preact_resnet", functools.partial(_build_preact, depth=depth),
            {**width64, "activation": ACTIVATION_OPTION, **_norm_options("CIFAR-10 statistics")},
            f"DeepMind-style pre-activation ResNet-{depth} (Swish, input normalised inside)",
        ))
    for depth in (28, 34):
        register_model(ModelEntry(
            f"wide_resnet_{depth}_10", "dm_wide_resnet", functools.partial(_build_dm_wrn, depth=depth),
            {"width_factor": _int(10, "width factor k: channels 16, 16k, 32k, 64k"), "activation": ACTIVATION_OPTION,
             **_norm_options("CIFAR-10 statistics")},
            f"DeepMind-style WRN-{depth}-10 (Swish, input normalised inside)",
        ))
    register_model(ModelEntry(
        "liu2020_wrn", "liu_wrn", _build_liu_wrn,
        {"width_factor": _int(2, "width factor k: channels 16, 16k, 32k, 64k"),
         "drop_rate": Option(0.0, "float", "dropout between the convolutions of a block", minimum=0.0,
                             maximum=1.0),
         **_norm_options("Liu et al.'s CIFAR statistics")},
        "WRN-40-2 of Liu et al. 2020 (energy OOD), input normalised inside",
    ))
    register_model(ModelEntry(
        "small_cnn", "small_cnn", _build_small_cnn,
        {"width": _int(16, "channels of conv1; conv2..4 have 2, 4, 8 times as many")},
        "four 3×3 convolutions with ReLU and max-pooling, global average pooling, FC",
    ))
    for patch, img in ((4, 32), (16, 224)):
        for size in VIT_SIZES:
            d, depth, heads = VIT_SIZES[size]
            register_model(ModelEntry(
                f"vit_{size}_patch{patch}_{img}", "vit", _build_vit, _vit_options(size, patch),
                f"ViT-{size} (D {d}, depth {depth}, heads {heads}), patch {patch}; image size = input_size",
                default_input_size=(img, img),
            ))
    for depth in (18, 34, 50, 101, 152):
        register_model(ModelEntry(
            f"repr_cls_resnet{depth}", "repr_cls_resnet", functools.partial(_build_repr_cls_resnet, depth=depth),
            width64,
            f"representation classifier: activation (C, h, w) resized to input_size, then CIFAR ResNet-{depth}; "
            "in_channels = C",
        ))
    for size in VIT_SIZES:
        opts = _vit_options(size, 1)
        del opts["patch_size"]
        register_model(ModelEntry(
            f"repr_cls_vit_{size}", "repr_cls_vit", _build_repr_cls_vit, opts,
            f"representation classifier on tokens (T, D_src): ViT-{size} blocks, CLS-position pooling; "
            "in_channels = D_src",
        ))
    ext = {"pretrained": PRETRAINED_OPTION, "kwargs": KWARGS_OPTION}
    for depth in (18, 34, 50, 101, 152):
        register_model(ModelEntry(
            f"tv_resnet{depth}", "tv_resnet", functools.partial(_build_torchvision, tv_name=f"resnet{depth}"), ext,
            f"torchvision ResNet-{depth} (ImageNet-style stem)", default_input_size=(224, 224), own=False,
        ))


_register_builtin()

FAMILY_TITLES = {
    "cifar_resnet": "CIFAR ResNets",
    "preact_resnet": "pre-activation ResNets",
    "dm_wide_resnet": "DeepMind wide ResNets",
    "liu_wrn": "Liu et al. wide ResNet",
    "small_cnn": "small CNN",
    "vit": "Vision Transformers (own implementation)",
    "repr_cls_resnet": "representation classifiers on conv activations",
    "repr_cls_vit": "representation classifiers on token sequences",
    "tv_resnet": "torchvision ResNets",
}


# --------------------------------------------------------------------------------------------------
# lookup


def _external_entry(name: str, family: str, build: Callable[..., nn.Module], description: str) -> ModelEntry:
    return ModelEntry(name, family, build, {"pretrained": PRETRAINED_OPTION, "kwargs": KWARGS_OPTION},
                      description, default_input_size=(224, 224), own=False)


def _unknown_model(name: str) -> UnknownNameError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return UnknownNameError(
        f"unknown model {name!r}{hint}; known models: {', '.join(_REGISTRY)}; "
        f"also '{TORCHVISION_PREFIX}<name>' for any torchvision classification model and "
        f"'{TIMM_PREFIX}<name>' for any timm model"
    )


def model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` for ``name`` (registered, prefixed or a resnet18/timm-ViT variant)."""
    if not isinstance(name, str):
        raise StitchkitError(f"a model name must be a string, got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith(TORCHVISION_PREFIX):
        tv = name[len(TORCHVISION_PREFIX):]
        external.check_torchvision_name(tv)
        return _external_entry(name, "torchvision", functools.partial(_build_torchvision, tv_name=tv),
                               f"torchvision {tv}")
    if name.startswith(TIMM_PREFIX):
        tm = name[len(TIMM_PREFIX):]
        external.check_timm_name(tm)
        return _external_entry(name, "timm", functools.partial(_build_timm, timm_name=tm), f"timm {tm}")
    m = re.fullmatch(r"resnet18_(\w+)", name)
    if m:
        words = tuple(m.group(1).split("_"))
        if set(words) <= set(RESNET18_SUFFIXES) and len(set(words)) == len(words):
            return _resnet18_variant(name, words)
        raise StitchkitError(
            f"unknown model {name!r}: a resnet18_<suffix> name combines the words "
            f"{', '.join(RESNET18_SUFFIXES)} joined by '_' (e.g. resnet18_samewidth_samesize)"
        )
    if name.startswith("vit") and external.is_timm_name(name):
        # the original sends every other vit… name to timm (spec §2.1 rule 4)
        return _external_entry(name, "timm", functools.partial(_build_timm, timm_name=name), f"timm {name}")
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
    return list(_REGISTRY)


def model_options(name: str) -> dict[str, Any]:
    """The options ``name`` accepts, with their defaults."""
    return {k: copy.deepcopy(o.default) for k, o in model_entry(name).options.items()}


def describe_models() -> str:
    """A readable list of the families, their names and options (for ``--help``)."""
    by_family: dict[str, list[ModelEntry]] = {}
    for e in _REGISTRY.values():
        by_family.setdefault(e.family, []).append(e)
    lines = []
    for fam, entries in by_family.items():
        opts = ", ".join(f"{k}={o.default!r}" for k, o in entries[0].options.items())
        lines.append(f"{FAMILY_TITLES.get(fam, fam)}: {', '.join(e.name for e in entries)}"
                     + (f"  [options: {opts}]" if opts else ""))
    lines.append(f"any torchvision classification model: {TORCHVISION_PREFIX}<name>  [options: pretrained, kwargs]")
    lines.append(f"any timm model: {TIMM_PREFIX}<name> (other vit… names also go to timm)  "
                 "[options: pretrained, kwargs]")
    return "\n".join(lines)


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

    Pretrained weights are not downloaded again (the checkpoint holds the weights) unless
    ``download_weights``; the returned model's ``stitchkit_spec`` equals ``spec``.
    """
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise StitchkitError(
            f"a model spec must be a dict with at least 'name' (keys {', '.join(SPEC_KEYS)}), got {spec!r}"
        )
    extra = [k for k in spec if k not in SPEC_KEYS]
    if extra:
        raise StitchkitError(f"unknown key {extra[0]!r} in a model spec; known keys: {', '.join(SPEC_KEYS)}")
    options = dict(spec.get("options") or {})
    if not download_weights and options.get("pretrained"):
        options["pretrained"] = False
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
