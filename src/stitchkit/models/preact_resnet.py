"""Pre-activation ResNets (He et al. 2016, "Identity mappings"), DeepMind style, and the shared pieces
of every pre-activation network in the zoo (also the wide ResNets in ``wide_resnet.py`` and
``liu_wrn.py``).

* :class:`InputNormalize` standardises raw [0, 1] pixels inside the network (spec §3 notes: preact,
  wide and Liu ResNets do, the CIFAR ResNets and ViTs do not).
* :class:`PreActBlock` is the one pre-activation block: ``a = act(BN(x))``; the residual branch is
  ``conv3×3(stride) → BN → act → (dropout) → conv3×3``; the skip is ``x`` when the shape is kept, else
  a 1×1 strided convolution of ``a``. The output is the sum, *before* any activation (the next block
  or the head normalises it). The three original code bases name the same submodules differently;
  ``names`` keeps each one's parameter names so their state_dicts load unchanged.
* :class:`PreActResNet` is ``preact_resnet18/34``: stem ``conv_2d``, stages ``layer_0..layer_3``,
  ``batchnorm``, ``relu``, global average pooling and ``logits``. Swish (x·sigmoid(x), torch's SiLU)
  is the default activation. The original pools with ``avg_pool2d(4)``; we pool globally, so any
  input size works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import StitchkitError
from .resnet_cifar import RESNET_STAGES, init_conv_bn_

# CIFAR-10 statistics used by the DeepMind-style models (spec §2.2)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)

ACTIVATIONS = {"swish": nn.SiLU, "relu": nn.ReLU}

# DeepMind's PyTorch port uses BatchNorm momentum 0.01 (Haiku's decay 0.99)
DM_BN_MOMENTUM = 0.01


def channel_stats(values: Sequence[float], in_channels: int, what: str) -> torch.Tensor:
    """Per-channel constants shaped (1, C, 1, 1).

    ``values`` has one entry per channel, or a single entry for all. When its length does not match
    ``in_channels`` (e.g. 3 RGB constants for a 1-channel MNIST model), the **mean of the constants**
    is used for every channel, so a grey image is normalised like its RGB version on average.
    """
    vals = [float(v) for v in values]
    if not vals:
        raise StitchkitError(f"{what} needs at least one value")
    if len(vals) != in_channels:
        vals = [sum(vals) / len(vals)] * in_channels
    return torch.tensor(vals, dtype=torch.float32).view(1, in_channels, 1, 1)


class InputNormalize(nn.Module):
    """``(x - mean) / std`` per channel; the constants are non-persistent buffers (not in state_dicts,
    like the original, whose checkpoints do not contain them)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], in_channels: int):
        super().__init__()
        std_t = channel_stats(std, in_channels, "input_std")
        if bool((std_t <= 0).any()):
            raise StitchkitError(f"input_std must be positive, got {list(std)}")
        self.register_buffer("mean", channel_stats(mean, in_channels, "input_mean"), persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise StitchkitError(f"unknown activation {name!r}; known activations: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


# submodule names of the block in each original code base: role -> attribute name
DM_PREACT_NAMES = {
    "norm_a": "batchnorm_0",
    "act_a": "relu_0",
    "conv_a": "conv_2d_1",
    "norm_b": "batchnorm_1",
    "act_b": "relu_1",
    "conv_b": "conv_2d_2",
    "shortcut": "shortcut",
}
DM_WRN_NAMES = {
    "norm_a": "batchnorm_0",
    "act_a": "relu_0",
    "conv_a": "conv_0",
    "norm_b": "batchnorm_1",
    "act_b": "relu_1",
    "conv_b": "conv_1",
    "shortcut": "shortcut",
}
LIU_WRN_NAMES = {
    "norm_a": "bn1",
    "act_a": "relu1",
    "conv_a": "conv1",
    "norm_b": "bn2",
    "act_b": "relu2",
    "conv_b": "conv2",
    "shortcut": "convShortcut",
}


class PreActBlock(nn.Module):
    """The pre-activation residual block shared by preact ResNets and both wide ResNets.

    Args:
        in_ch, out_ch, stride: shape change of the block.
        activation: ``"swish"`` or ``"relu"``.
        padding: ``"same"`` pads explicitly like TensorFlow's SAME (1 on each side at stride 1; only
            bottom/right at stride 2 on even sizes), as DeepMind's models do; ``"symmetric"`` uses
            ``padding=1``.
        names: role → attribute name (``DM_PREACT_NAMES``, ``DM_WRN_NAMES`` or ``LIU_WRN_NAMES``).
        bn_momentum: BatchNorm momentum.
        drop_rate: dropout between the two convolutions (Liu's WRN; 0 in the paper).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        activation: str = "swish",
        padding: str = "same",
        names: dict[str, str] = DM_PREACT_NAMES,
        bn_momentum: float = 0.1,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if padding not in ("same", "symmetric"):
            raise StitchkitError(f"padding must be 'same' or 'symmetric', got {padding!r}")
        self._names = dict(names)
        if padding == "same" and stride not in (1, 2):
            raise StitchkitError(f"SAME padding supports stride 1 or 2, got {stride}")
        self._same = padding == "same"
        self.stride = stride
        conv_pad = 0 if padding == "same" else 1
        setattr(self, names["norm_a"], nn.BatchNorm2d(in_ch, momentum=bn_momentum))
        setattr(self, names["act_a"], make_activation(activation))
        setattr(self, names["conv_a"], nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=conv_pad, bias=False))
        setattr(self, names["norm_b"], nn.BatchNorm2d(out_ch, momentum=bn_momentum))
        setattr(self, names["act_b"], make_activation(activation))
        self.dropout = nn.Dropout(drop_rate)
        setattr(self, names["conv_b"], nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False))
        has_shortcut = stride != 1 or in_ch != out_ch
        shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False) if has_shortcut else None
        setattr(self, names["shortcut"], shortcut)

    def _same_padding(self, a: torch.Tensor):
        """TensorFlow SAME padding (left, right, top, bottom) of a 3×3 convolution.

        Stride 1 pads 1 on every side. Stride 2 pads 2 - (n mod 2) in total, the extra one at the
        end: (0, 1) on even sizes (DeepMind's fixed choice for 32×32 inputs) and (1, 1) on odd sizes,
        so 28×28 inputs (7 → 4 at the last stage) work too. Written without Python branching on the
        size, so torch.fx can trace it.
        """
        if self.stride == 1:
            return (1, 1, 1, 1)
        return (a.shape[-1] % 2, 1, a.shape[-2] % 2, 1)

    def _m(self, role: str) -> nn.Module:
        return getattr(self, self._names[role])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self._m("act_a")(self._m("norm_a")(x))
        shortcut = self._m("shortcut")
        skip = x if shortcut is None else shortcut(a)
        if self._same:
            a = F.pad(a, self._same_padding(a))
        out = self._m("conv_a")(a)
        out = self.dropout(self._m("act_b")(self._m("norm_b")(out)))
        return self._m("conv_b")(out) + skip


def make_preact_stage(n: int, in_ch: int, out_ch: int, stride: int, **block_kwargs) -> list[PreActBlock]:
    """``n`` blocks; the first changes the shape (``in_ch → out_ch``, ``stride``)."""
    return [PreActBlock(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1, **block_kwargs) for i in range(n)]


class BlockGroup(nn.Module):
    """A stage whose blocks sit in a Sequential under the attribute ``attr`` (``block`` in DeepMind's
    WRN, ``layer`` in Liu's), so the block names are ``<stage>.<attr>.<i>``."""

    def __init__(self, blocks: Sequence[nn.Module], attr: str):
        super().__init__()
        self._attr = attr
        setattr(self, attr, nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self._attr)(x)


class PreActResNet(nn.Module):
    """``preact_resnet18`` / ``preact_resnet34`` (DeepMind style). Stitchable: ``layer_{s}.{b}``."""

    def __init__(
        self,
        depth: int = 18,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 64,
        activation: str = "swish",
        input_mean: Sequence[float] = CIFAR10_MEAN,
        input_std: Sequence[float] = CIFAR10_STD,
    ):
        super().__init__()
        if depth not in (18, 34):
            raise StitchkitError(f"preact ResNet depth must be 18 or 34, got {depth}")
        counts = RESNET_STAGES[depth][1]
        self.normalize = InputNormalize(input_mean, input_std, in_channels)
        self.conv_2d = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        in_ch = width
        for s, (n, mult, stride) in enumerate(zip(counts, (1, 2, 4, 8), (1, 2, 2, 2))):
            out_ch = width * mult
            blocks = make_preact_stage(
                n,
                in_ch,
                out_ch,
                stride,
                activation=activation,
                padding="same",
                names=DM_PREACT_NAMES,
                bn_momentum=DM_BN_MOMENTUM,
            )
            setattr(self, f"layer_{s}", nn.Sequential(*blocks))
            in_ch = out_ch
        self.batchnorm = nn.BatchNorm2d(in_ch, momentum=DM_BN_MOMENTUM)
        self.relu = make_activation(activation)
        self.logits = nn.Linear(in_ch, num_classes)
        self.num_features = in_ch
        self.stitchable_layers: tuple[str, ...] = tuple(
            f"layer_{s}.{b}" for s, n in enumerate(counts) for b in range(n)
        )
        init_conv_bn_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_2d(self.normalize(x))
        x = self.layer_3(self.layer_2(self.layer_1(self.layer_0(x))))
        x = self.relu(self.batchnorm(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.logits(torch.flatten(x, 1))
