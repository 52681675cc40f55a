"""One item of a dataset given in memory, checked before anything is loaded (:func:`check_item`).

A dataset from a notebook can be anything with ``__getitem__`` and ``__len__``; what stitchkit needs is
items ``(image, label)``: the image a float tensor (``C×H×W`` for images), finite, the label an integer
class index. A wrong item would otherwise fail deep inside a batch loop (a ``KeyError`` from a dict
item, ``tuple index out of range`` from a 1-tuple) or, worse, run: NaN pixels give NaN activations and
a least-squares fit of NaNs. Item 0 stands for the rest (checking every item would load them all).
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from ..errors import StitchkitError, warn

#: above this, a float image is taken for 0–255 pixels (normalised images stay within about ±3)
BYTE_SCALE_MAX = 5.0


def check_item(dataset: Any, what: str) -> None:
    """Check item 0 of ``dataset`` (``what``: the data's role, e.g. ``"train"``): an ``(image, label)``
    pair, the image a finite float tensor (a warning when its values look like 0–255), the label an
    integer class index. Raises :class:`~stitchkit.errors.StitchkitError` naming what is wrong."""
    where = f"item 0 of the {what} data"
    try:
        item = dataset[0]
    except Exception as exc:  # the user's __getitem__: report its first line, not a traceback
        raise StitchkitError(f"{where} cannot be read: {type(exc).__name__}: {_first_line(exc)}") from None
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise StitchkitError(
            f"{where} is {_kind(item)}; items must be (image, label) pairs, e.g. (a C×H×W float tensor, an int)"
        )
    _check_image(item[0], where)
    _check_label(item[1], where)


def _check_image(x: Any, where: str) -> None:
    if not isinstance(x, torch.Tensor):
        hint = (
            " (add torchvision.transforms.ToTensor() to its transform)"
            if type(x).__module__.startswith("PIL")
            else " (torch.from_numpy(x))"
            if type(x).__module__ == "numpy"
            else ""
        )
        raise StitchkitError(f"the image of {where} is {_kind(x)}; images must be float tensors{hint}")
    if not x.is_floating_point():
        raise StitchkitError(
            f"the image of {where} is a {x.dtype} tensor; images must be float tensors in [0, 1] "
            f"(for 0–255 pixels: x.float() / 255)"
        )
    if x.dim() == 4 and x.shape[0] == 1:
        raise StitchkitError(
            f"the image of {where} has shape {tuple(x.shape)}, with a batch dimension; an item is one image "
            f"(C×H×W): x.squeeze(0)"
        )
    if x.numel() == 0:
        raise StitchkitError(f"the image of {where} is empty (shape {tuple(x.shape)})")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise StitchkitError(
            f"the image of {where} holds {bad} NaN or infinite value{'s' if bad > 1 else ''} of {x.numel()}; "
            "images must be finite"
        )
    high = float(x.max())
    if high > BYTE_SCALE_MAX:
        warn(
            f"the image of {where} has values up to {high:g}, which looks like 0–255 pixels; stitchkit's datasets "
            f"give images "
            "in [0, 1] (divide by 255 unless the models were trained on this scale)"
        )


def _check_label(y: Any, where: str) -> None:
    if isinstance(y, torch.Tensor) and y.numel() == 1:
        y = y.reshape(()).item() if not y.is_floating_point() else float(y.reshape(()))
    elif isinstance(y, torch.Tensor):
        hint = " (one-hot? give the class index, y.argmax())" if y.dim() == 1 else ""
        raise StitchkitError(
            f"the label of {where} is a tensor of shape {tuple(y.shape)}; a label is one integer class index{hint}"
        )
    if isinstance(y, bool) or not isinstance(y, numbers.Integral):
        hint = (
            " (map class names to indices 0 … K−1)"
            if isinstance(y, str)
            else " (int(y))"
            if isinstance(y, numbers.Real) and not isinstance(y, bool) and float(y).is_integer()
            else ""
        )
        raise StitchkitError(f"the label of {where} is {_kind(y)}; labels must be integer class indices 0 … K−1{hint}")
    if int(y) < 0:
        raise StitchkitError(f"the label of {where} is {int(y)}; labels must be class indices 0 … K−1")


def _kind(value: Any) -> str:
    """A value in words: ``a dict with keys 'image', 'label'``, ``a tuple of 1 item``, ``the str 'cat'``."""
    if isinstance(value, dict):
        return f"a dict with keys {', '.join(map(repr, list(value)[:4]))}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, (str, bool, numbers.Number)):
        return f"the {type(value).__name__} {value!r}"
    return (
        f"a {type(value).__module__.split('.')[0]}.{type(value).__name__}"
        if type(value).__module__ != "builtins"
        else f"a {type(value).__name__}"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["check_item"]
