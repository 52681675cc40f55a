"""What the model registry holds, without building anything: names, families, options, descriptions
(the options' schema is :mod:`.options`).

This module imports neither torch nor the architectures, so ``stitchkit models`` and every parser can
read it in a fraction of a second. :mod:`stitchkit.models.registry` pairs each :class:`ModelInfo`
with its family's builder (``builder`` names it; ``build_args`` are the fixed keyword arguments that
make, e.g., ResNet-50 out of the CIFAR ResNet builder). Every name is declared here once.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import StitchkitError
from .options import ACTIVATION_OPTION, EXTERNAL_OPTIONS, Option, int_option

TORCHVISION_PREFIX = "torchvision:"
TIMM_PREFIX = "timm:"

# size word -> (embed_dim, depth, num_heads) (spec §2.2)
VIT_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "medium": (512, 12, 8),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
    "giant": (1408, 40, 16),
    "gigantic": (1664, 48, 16),
}

RESNET18_SUFFIXES = {"samewidth": "same_width", "samesize": "same_size"}


def _norm_options(what: str) -> dict[str, Option]:
    return {
        "input_mean": Option(None, "floats", f"per-channel input mean (None: {what})", nullable=True),
        "input_std": Option(None, "floats", f"per-channel input std (None: {what})", nullable=True),
    }


def _vit_options(size: str, patch: int) -> dict[str, Option]:
    d, depth, heads = VIT_SIZES[size]
    return {
        "embed_dim": int_option(d, "token dimension D"),
        "depth": int_option(depth, "number of transformer blocks"),
        "num_heads": int_option(heads, "attention heads (must divide embed_dim)"),
        "patch_size": int_option(patch, "patch side in pixels (must divide the input size)"),
        "mlp_ratio": Option(4.0, "float", "MLP hidden size / embed_dim", minimum=0, exclusive_minimum=True),
    }


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
                hint = " (local weights load into torchvision: and timm: models; the zoo's own models load from a checkpoint)"
            if self.options:
                known = "; ".join(f"{k} ({o.allowed()}, default {o.default!r})" for k, o in self.options.items())
                raise StitchkitError(f"model {self.name!r} has no option {unknown[0]!r}{hint}; its options: {known}")
            raise StitchkitError(f"model {self.name!r} has no option {unknown[0]!r}{hint}; it takes no options")
        out = {}
        for k, opt in self.options.items():
            out[k] = opt.validate(self.name, k, given[k]) if k in given else copy.deepcopy(opt.default)
        return out


def resnet18_variant(name: str, words: tuple[str, ...]) -> ModelInfo:
    """``resnet18_samewidth``, ``resnet18_samesize`` and their combination (in either order)."""
    flags = {RESNET18_SUFFIXES[w]: True for w in words}
    what = " and ".join({"same_width": "every stage `width` channels", "same_size": "every stage stride 1"}[f] for f in flags)
    return ModelInfo(name, "cifar_resnet", {"width": int_option(64, "base width (channels of the stem)")}, f"CIFAR ResNet-18 with {what}",
                     build_args={"depth": 18, **flags})


def external_info(name: str, family: str, build_args: Mapping[str, Any], description: str) -> ModelInfo:
    """A ``torchvision:<name>`` or ``timm:<name>`` architecture (ImageNet-sized by default)."""
    return ModelInfo(name, family, EXTERNAL_OPTIONS, description, default_input_size=(224, 224), own=False, build_args=dict(build_args))


def _catalog() -> list[ModelInfo]:
    width64 = {"width": int_option(64, "base width: stages have width·(1, 2, 4, 8) planes")}
    out = [ModelInfo(f"resnet{d}", "cifar_resnet", width64, f"CIFAR ResNet-{d} (3×3 stem, no max-pool, global average pooling)",
                     build_args={"depth": d}) for d in (18, 34, 50, 101, 152)]
    out += [resnet18_variant("resnet18_" + "_".join(words), words) for words in (("samewidth",), ("samesize",), ("samewidth", "samesize"))]
    for name, depth, groups, wpg, what in (
        ("wide_resnet50_2", 50, 1, 128, "wide ResNet-50-2"),
        ("wide_resnet101_2", 101, 1, 128, "wide ResNet-101-2"),
        ("resnext50_32x4d", 50, 32, 4, "ResNeXt-50 32×4d"),
        ("resnext101_32x8d", 101, 32, 8, "ResNeXt-101 32×8d"),
    ):
        out.append(ModelInfo(name, "cifar_resnet", width64, f"CIFAR-style {what} (Bottleneck, groups {groups}, width_per_group {wpg})",
                             build_args={"depth": depth, "groups": groups, "width_per_group": wpg}))
    out += [ModelInfo(f"preact_resnet{d}", "preact_resnet", {**width64, "activation": ACTIVATION_OPTION, **_norm_options("CIFAR-10 statistics")},
                      f"DeepMind-style pre-activation ResNet-{d} (Swish, input normalised inside)", build_args={"depth": d}) for d in (18, 34)]
    out += [ModelInfo(f"wide_resnet_{d}_10", "dm_wide_resnet",
                      {"width_factor": int_option(10, "width factor k: channels 16, 16k, 32k, 64k"), "activation": ACTIVATION_OPTION,
                       **_norm_options("CIFAR-10 statistics")},
                      f"DeepMind-style WRN-{d}-10 (Swish, input normalised inside)", build_args={"depth": d}) for d in (28, 34)]
    out.append(ModelInfo(
        "liu2020_wrn", "liu_wrn",
        {"width_factor": int_option(2, "width factor k: channels 16, 16k, 32k, 64k"),
         "drop_rate": Option(0.0, "float", "dropout between the convolutions of a block", minimum=0.0, maximum=1.0),
         **_norm_options("Liu et al.'s CIFAR statistics")},
        "WRN-40-2 of Liu et al. 2020 (energy OOD), input normalised inside",
    ))
    out.append(ModelInfo("small_cnn", "small_cnn", {"width": int_option(16, "channels of conv1; conv2..4 have 2, 4, 8 times as many")},
                         "four 3×3 convolutions with ReLU and max-pooling, global average pooling, FC"))
    for patch, img in ((4, 32), (16, 224)):
        for size, (d, depth, heads) in VIT_SIZES.items():
            out.append(ModelInfo(f"vit_{size}_patch{patch}_{img}", "vit", _vit_options(size, patch),
                                 f"ViT-{size} (D {d}, depth {depth}, heads {heads}), patch {patch}; image size = input_size",
                                 default_input_size=(img, img)))
    out += [ModelInfo(f"repr_cls_resnet{d}", "repr_cls_resnet", width64,
                      f"representation classifier: activation (C, h, w) resized to input_size, then CIFAR ResNet-{d}; in_channels = C",
                      build_args={"depth": d}) for d in (18, 34, 50, 101, 152)]
    for size in VIT_SIZES:
        opts = _vit_options(size, 1)
        del opts["patch_size"]
        out.append(ModelInfo(f"repr_cls_vit_{size}", "repr_cls_vit", opts,
                             f"representation classifier on tokens (T, D_src): ViT-{size} blocks, CLS-position pooling; in_channels = D_src"))
    out += [ModelInfo(f"tv_resnet{d}", "tv_resnet", EXTERNAL_OPTIONS, f"torchvision ResNet-{d} (ImageNet-style stem)",
                      default_input_size=(224, 224), own=False, build_args={"tv_name": f"resnet{d}"}, builder="torchvision")
            for d in (18, 34, 50, 101, 152)]
    return out


#: every registered architecture by name, family by family
MODELS: dict[str, ModelInfo] = {info.name: info for info in _catalog()}

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


def describe_models(entries: Iterable[Any] | None = None) -> str:
    """A readable list of the families, their names and options (``entries``: anything with ``name``,
    ``family`` and ``options``; default the catalogue)."""
    by_family: dict[str, list[Any]] = {}
    for e in MODELS.values() if entries is None else entries:
        by_family.setdefault(e.family, []).append(e)
    lines = []
    for fam, members in by_family.items():
        opts = ", ".join(f"{k}={o.default!r}" for k, o in members[0].options.items())
        lines.append(f"{FAMILY_TITLES.get(fam, fam)}: {', '.join(e.name for e in members)}" + (f"  [options: {opts}]" if opts else ""))
    external = ", ".join(EXTERNAL_OPTIONS)
    lines.append(f"any torchvision classification model: {TORCHVISION_PREFIX}<name>  [options: {external}]")
    lines.append(f"any timm model: {TIMM_PREFIX}<name> (other vit… names also go to timm)  [options: {external}]")
    return "\n".join(lines)
