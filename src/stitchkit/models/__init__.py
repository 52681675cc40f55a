"""Models: the registry of architectures by name (:mod:`.registry`) and the zoo's implementations.

``get_model(name, num_classes, in_channels, input_size, **options)`` builds any registered
architecture; ``list_models()`` / ``describe_models()`` show what exists; ``model_options(name)`` the
options of one name; ``build_from_spec(model.stitchkit_spec)`` rebuilds a model from its recorded spec.
What exists is declared torch-free in :mod:`.catalog`.
"""

from ..utils.lazy import lazy_exports
from .catalog import ModelInfo
from .options import Option

__all__ = [
    "ModelEntry",
    "ModelInfo",
    "Option",
    "build_from_spec",
    "describe_models",
    "get_model",
    "is_known_model",
    "list_models",
    "model_entry",
    "model_options",
    "register_model",
]


#: the registry's names: it imports torch and every architecture, so it loads on first use and reading
#: the catalogue (`stitchkit models`, the parsers) stays fast
_LAZY = {name: "registry" for name in __all__ if name not in ("ModelInfo", "Option")}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
