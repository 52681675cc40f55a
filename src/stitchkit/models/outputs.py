"""The one rule for reading a tensor out of what a model or a module returns.

Models and modules from other libraries do not always return one tensor: HuggingFace ``transformers``
models return a ``ModelOutput`` (a dict that also has attributes, e.g. ``.logits``), their blocks
return tuples ``(hidden_states, attentions, …)``, and other code returns dicts or lists. stitchkit
works on tensors, so everything that reads an output goes through :func:`logits_of` (a whole model's
output) or :func:`activation_of` (a layer's output), and a layer's output is replaced through
:func:`replace_activation`. The rule, declared once here:

* a tensor is itself;
* a mapping (``ModelOutput`` included) gives its entry under the preferred key — ``"logits"`` for a
  model, ``"last_hidden_state"`` for a layer — else its first tensor entry;
* any other object with the preferred attribute (a ``ModelOutput``-like dataclass) gives that attribute;
* a tuple or list gives its first element (read by the same rule).

Token outputs ``(B, N, D)`` are kept as they are: the stitching layers and measures take tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..errors import StitchkitError

#: the key (or attribute) preferred in a whole model's output and in a layer's output
LOGITS_KEY = "logits"
HIDDEN_KEY = "last_hidden_state"


def _key_of(output: Mapping, preferred: str) -> Any:
    """The key of ``output`` the rule reads: ``preferred``, else the first key holding a tensor."""
    if preferred in output and output[preferred] is not None:
        return preferred
    return next((key for key, value in output.items() if isinstance(value, Tensor)), None)


def _select(output: Any, preferred: str, what: str) -> Tensor:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping):
        key = _key_of(output, preferred)
        if key is not None:
            return output[key]
    elif isinstance(getattr(output, preferred, None), Tensor):
        return getattr(output, preferred)
    elif isinstance(output, (tuple, list)) and output:
        return _select(output[0], preferred, what)
    raise StitchkitError(
        f"{what} returned {type(output).__name__}, in which stitchkit finds no tensor (it reads a tensor, "
        f"a mapping's {preferred!r} or first tensor entry, or a tuple's first element)"
    )


def logits_of(output: Any) -> Tensor:
    """The logits in a whole model's output (the rule in the module docstring, ``.logits`` preferred)."""
    return _select(output, LOGITS_KEY, "the model")


def activation_of(output: Any) -> Tensor:
    """The activation in a layer's output (the rule in the module docstring, ``last_hidden_state`` preferred)."""
    return _select(output, HIDDEN_KEY, "the layer")


def replace_activation(output: Any, new: Tensor) -> Any:
    """``output`` with the tensor :func:`activation_of` reads in it replaced by ``new`` (same container type)."""
    if isinstance(output, Tensor):
        return new
    if isinstance(output, Mapping):
        key = _key_of(output, HIDDEN_KEY)
        if key is None:
            raise StitchkitError(f"the layer returned {type(output).__name__} without a tensor to replace")
        replaced = output.copy() if hasattr(output, "copy") else dict(output)
        replaced[key] = new
        return replaced
    if isinstance(output, (tuple, list)) and output:
        first = replace_activation(output[0], new)
        rest = list(output[1:])
        return (
            type(output)([first, *rest])
            if isinstance(output, list) or type(output) is tuple
            else type(output)(first, *rest)
        )
    raise StitchkitError(f"the layer returned {type(output).__name__}, whose tensor stitchkit cannot replace")


__all__ = ["HIDDEN_KEY", "LOGITS_KEY", "activation_of", "logits_of", "replace_activation"]
