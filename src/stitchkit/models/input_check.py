"""Whether a model takes inputs of a given shape, and the one-sentence error with the fixes when it does
not (a timm ViT built for 224 pixels on 28-pixel data): :func:`check_input` for a model as built,
:func:`input_shape_error` for any forward that failed on its input (also a cut of the model)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import StitchkitError

#: what a model's forward raises when an input does not fit it (a shape mismatch, timm's size asserts)
INPUT_ERRORS = (RuntimeError, AssertionError, ValueError, IndexError)


def _size_text(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def expected_input_shape(model: nn.Module) -> tuple[int, ...] | None:
    """The ``(C, H, W)`` a model says it was built for, where it says one: timm models' configuration
    (``pretrained_cfg["input_size"]``); None for others (torchvision's pool globally)."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    return tuple(int(v) for v in size) if isinstance(size, (tuple, list)) and len(size) == 3 else None


def input_shape_error(model: nn.Module, label: str, input_shape: Sequence[int], exc: BaseException) -> StitchkitError:
    """The one-sentence error for a model that cannot take inputs of ``input_shape`` (C, H, W), with the
    fixes: data at the size the model was built for (``NAME@CxHxW``, ``cifar10_large``), or, for a
    library's model, the model built for this size (its constructor's keyword arguments, the model
    option ``kwargs``)."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    expected = expected_input_shape(model)
    if expected:
        size = _size_text(expected[1:])
        example = f"fashion@{size}" + (" or cifar10_large" if tuple(expected[1:]) == (224, 224) else "")
        data = f"give it data of the size it takes (dataset NAME@{size}, e.g. {example})"
    else:
        data = "give it data of a size it takes (dataset NAME@CxHxW, e.g. fashion@3x32x32 or cifar10_large)"
    text = (
        f"{label}{f' (built for {size} inputs)' if expected else ''} cannot take inputs of shape "
        f"{_size_text(input_shape)} ({type(exc).__name__}: {reason}); {data}"
    )
    if type(model).__module__.split(".")[0] in ("timm", "torchvision"):
        text += (
            ", or build it for this size through its constructor's keyword arguments (the model option kwargs, e.g. "
            f"--model-option 'kwargs={{\"img_size\": {input_shape[-1]}}}' for a timm ViT)"
        )
    return StitchkitError(text)


@torch.no_grad()
def check_input(model: nn.Module, label: str, input_shape: tuple[int, int, int]) -> nn.Module:
    """``model`` once it has taken one blank input of ``input_shape`` (C, H, W); ``get_model`` checks
    every library model so. A model built for another size (a timm ViT for 224 pixels on 28-pixel
    data) stops here, with the fixes in one sentence, instead of failing with a traceback in the middle
    of training or cutting."""
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_shape))
    except INPUT_ERRORS as exc:
        raise input_shape_error(model, label, input_shape, exc) from None
    finally:
        model.train(was_training)
    return model
