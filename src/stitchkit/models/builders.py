"""The build function of each family of the zoo: ``build(num_classes, in_channels, input_size, **options)``
returns the module (the catalogue's ``builder`` names one of :data:`BUILDERS`)."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from . import external
from .liu_wrn import LIU_MEAN, LIU_STD, LiuWideResNet
from .preact_resnet import CIFAR10_MEAN, CIFAR10_STD, PreActResNet
from .repr_cls import ReprClsResNet, ReprClsViT
from .resnet_cifar import CifarResNet
from .small_cnn import SmallCNN
from .vit import VisionTransformer
from .wide_resnet import DMWideResNet


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


def _build_torchvision(num_classes, in_channels, input_size, *, tv_name, pretrained, weights, kwargs):
    return external.build_torchvision(tv_name, num_classes, in_channels, pretrained=pretrained, weights=weights, kwargs=kwargs)


def _build_timm(num_classes, in_channels, input_size, *, timm_name, pretrained, weights, kwargs):
    return external.build_timm(timm_name, num_classes, in_channels, pretrained=pretrained, weights=weights, kwargs=kwargs)


#: the build function of each catalogue ``builder`` name
BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "cifar_resnet": _build_cifar_resnet,
    "preact_resnet": _build_preact,
    "dm_wide_resnet": _build_dm_wrn,
    "liu_wrn": _build_liu_wrn,
    "small_cnn": _build_small_cnn,
    "vit": _build_vit,
    "repr_cls_resnet": _build_repr_cls_resnet,
    "repr_cls_vit": _build_repr_cls_vit,
    "torchvision": _build_torchvision,
    "timm": _build_timm,
}
