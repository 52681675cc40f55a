"""Frozen donors run faster with their batch normalisations folded into the convolutions before them.

A frozen network in eval mode computes ``BN(conv(x)) = γ·(W∗x + b − μ)/√(σ² + ε) + β``, which is one
convolution with weights ``W·γ/√(σ² + ε)`` and bias ``(b − μ)·γ/√(σ² + ε) + β``: the same function with
one operation fewer, forward and backward (about 15% of a ResNet's time on a CPU). :func:`fold_batchnorm`
returns a copy of a model with every such pair folded *inside* its stitchable layers (and never across
them, so the layer names, their cuts and their activations stay exactly those of the model). The
copy is only for computing with frozen donors: it cannot be trained (BatchNorm is gone) and it is
never saved; results keep naming the original model.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.fx.experimental.optimization import fuse

from .layers import layered


def _has_conv_bn(module: nn.Module) -> bool:
    kinds = {type(m) for m in module.modules()}
    return any(issubclass(k, nn.Conv2d) for k in kinds) and any(issubclass(k, nn.BatchNorm2d) for k in kinds)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of ``model`` whose Conv2d → BatchNorm2d pairs inside each stitchable
    layer are folded into single convolutions (module docstring). Layers that cannot be traced keep
    their modules unchanged; a model without such pairs is returned as an (unfolded) copy."""
    folded = copy.deepcopy(model).eval().requires_grad_(False)
    for name in layered(model).layers:
        block = folded.get_submodule(name)
        if not _has_conv_bn(block):
            continue
        try:
            replacement = fuse(block)
        except Exception:  # data-dependent control flow and the like: keep the layer as it is
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(folded.get_submodule(parent_name) if parent_name else folded, child, replacement)
    return folded.eval().requires_grad_(False)


__all__ = ["fold_batchnorm"]
