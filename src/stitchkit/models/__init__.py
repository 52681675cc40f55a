"""Models: the registry of architectures by name (:mod:`.registry`) and the zoo's implementations.

``get_model(name, num_classes, in_channels, input_size, **options)`` builds any registered
architecture; ``list_models()`` / ``describe_models()`` show what exists; ``model_options(name)`` the
options of one name; ``build_from_spec(model.stitchkit_spec)`` rebuilds a model from its recorded spec.
What exists is declared torch-free in :mod:`.catalog`.
"""

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


def __getattr__(name: str):
    # The registry imports torch and every architecture; load it on first use, so that reading the
    # catalogue (`stitchkit models`, the parsers) stays fast.
    if name in __all__:
        from . import registry  # deferred: see above

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
