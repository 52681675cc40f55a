"""Architectures from torchvision and timm.

* ``tv_resnet{18,34,50,101,152}``: torchvision's ImageNet ResNets (7×7 stride-2 stem and max-pool).
* ``torchvision:<name>``: any torchvision classification architecture
  (``torchvision.models.get_model(name, weights=None, num_classes=…)``).
* ``timm:<name>``: any timm architecture (``timm.create_model(name, pretrained=…, num_classes=…,
  in_chans=…)``); ``vit…`` names that are not the zoo's own ViTs also go to timm.

Weights are downloaded only with the option ``pretrained=True``. When ``in_channels`` differs from 3,
torchvision models get a new first convolution of the right width (timm does this itself); with
pretrained weights its kernel is the RGB kernel averaged over the colour channels and scaled by
``3 / in_channels``, so a grey image gives the response of the same grey RGB image.

torchvision ResNets (``tv_resnet*`` and ``torchvision:resnet*``/``wide_resnet*``/``resnext*``) get
``stitchable_layers = layer{s}.{b}``; other external models leave it unset, and the layer-cutting
code derives their layers generically.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

from ..errors import StitchkitError, unknown_name
from .resnet_cifar import resnet_layer_names


@functools.cache
def torchvision_names() -> tuple[str, ...]:
    """torchvision's classification architectures (not detection/segmentation/video)."""
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


@functools.cache
def timm_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


def is_torchvision_name(name: str) -> bool:
    return name in torchvision_names()


def is_timm_name(name: str) -> bool:
    import timm

    return bool(timm.is_model(name))


def check_torchvision_name(name: str) -> None:
    if not is_torchvision_name(name):
        raise unknown_name("torchvision model", name, torchvision_names())


def check_timm_name(name: str) -> None:
    if not is_timm_name(name):
        raise unknown_name("timm model", name, timm_names())


def _replace_module(model: nn.Module, qualname: str, new: nn.Module) -> None:
    parent_name, _, child = qualname.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def adapt_first_conv(model: nn.Module, in_channels: int, pretrained: bool) -> None:
    """Give the first Conv2d ``in_channels`` inputs (see the module docstring)."""
    for qualname, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            break
    else:
        raise StitchkitError(f"cannot adapt {type(model).__name__} to {in_channels} input channels: it has no Conv2d")
    if m.in_channels == in_channels:
        return
    if m.groups != 1:
        raise StitchkitError(f"cannot adapt the grouped first convolution {qualname!r} to {in_channels} channels")
    new = nn.Conv2d(
        in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
        bias=m.bias is not None, padding_mode=m.padding_mode,
    )
    with torch.no_grad():
        if pretrained:
            w = m.weight.mean(dim=1, keepdim=True) * (m.in_channels / in_channels)
            new.weight.copy_(w.expand(-1, in_channels, -1, -1))
            if m.bias is not None:
                new.bias.copy_(m.bias)
        else:
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
            if new.bias is not None:
                nn.init.zeros_(new.bias)
    _replace_module(model, qualname, new)


def resize_classifier(model: nn.Module, num_classes: int, name: str) -> None:
    """Replace the last Linear layer by a fresh one with ``num_classes`` outputs (if it differs)."""
    last = None
    for qualname, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = (qualname, m)
    if last is None:
        raise StitchkitError(
            f"torchvision:{name} with pretrained weights has no Linear head to resize to {num_classes} classes"
        )
    qualname, m = last
    if m.out_features != num_classes:
        _replace_module(model, qualname, nn.Linear(m.in_features, num_classes, bias=m.bias is not None))


def _set_resnet_layers(model: nn.Module) -> nn.Module:
    import torchvision

    if isinstance(model, torchvision.models.ResNet):
        model.stitchable_layers = resnet_layer_names([len(getattr(model, f"layer{s}")) for s in (1, 2, 3, 4)])
    return model


def build_torchvision(
    name: str, num_classes: int, in_channels: int, pretrained: bool = False, kwargs: dict[str, Any] | None = None
) -> nn.Module:
    import torchvision

    check_torchvision_name(name)
    kwargs = dict(kwargs or {})
    try:
        if pretrained:
            model = torchvision.models.get_model(name, weights="DEFAULT", **kwargs)
            resize_classifier(model, num_classes, name)
        else:
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as e:
        raise StitchkitError(f"torchvision:{name} could not be built with {kwargs}: {e}") from e
    except OSError as e:  # URLError and friends: no network or no cache
        raise StitchkitError(f"could not download the pretrained weights of torchvision:{name}: {e}") from e
    if in_channels != 3:
        adapt_first_conv(model, in_channels, pretrained)
    return _set_resnet_layers(model)


def build_timm(
    name: str, num_classes: int, in_channels: int, pretrained: bool = False, kwargs: dict[str, Any] | None = None
) -> nn.Module:
    import timm

    check_timm_name(name)
    kwargs = dict(kwargs or {})
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_channels, **kwargs)
    except (TypeError, ValueError) as e:
        raise StitchkitError(f"timm:{name} could not be built with {kwargs}: {e}") from e
    except OSError as e:  # network and Hugging Face hub errors
        raise StitchkitError(f"could not download the pretrained weights of timm:{name}: {e}") from e
