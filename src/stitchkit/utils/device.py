"""Device selection that accepts the original's ``-gpu`` integers and torch device strings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..errors import StitchkitError


def resolve_device(spec: str | int | None) -> torch.device:
    """``-1``/``cpu`` -> CPU; ``0``/``cuda:0`` -> that GPU; ``auto``/None -> a GPU when one exists.

    The original's default ``-gpu 0`` would crash on a machine without CUDA; we fall back to the CPU
    for the default value ``auto`` only and refuse an explicit GPU that is not there.
    """
    if spec is None or str(spec) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if index < 0:
            return torch.device("cpu")
        text = f"cuda:{index}"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise StitchkitError(
            f"unknown device {spec!r}; use -1 or 'cpu' for the CPU, a GPU index like 0, or 'cuda:1'"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise StitchkitError(
                f"device {spec!r} asked for a GPU but CUDA is not available here; use -gpu -1 (or --device cpu)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise StitchkitError(
                f"GPU {device.index} does not exist; this machine has {torch.cuda.device_count()} GPU(s)"
            )
    return device


def _layout(model: torch.nn.Module) -> torch.memory_format:
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    if weight is not None and not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


@contextlib.contextmanager
def channels_last(*models: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Inside the block the models' 4-D weights are in channels-last layout (oneDNN's and cuDNN's
    faster convolutions; the same function), afterwards in the layout they had."""
    if not enabled:
        yield
        return
    unique = list({id(m): m for m in models}.values())
    before = [_layout(m) for m in unique]
    for model in unique:
        model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for model, layout in zip(unique, before):
            model.to(memory_format=layout)
