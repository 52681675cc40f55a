"""Models: the registry of architectures by name (:mod:`.registry`) and the zoo's implementations.

``get_model(name, num_classes, in_channels, input_size, **options)`` builds any registered
architecture; ``list_models()`` / ``describe_models()`` show what exists; ``model_options(name)`` the
options of one name; ``build_from_spec(model.stitchkit_spec)`` rebuilds a model from its recorded spec.
"""

from .registry import (
    ModelEntry,
    Option,
    build_from_spec,
    describe_models,
    get_model,
    is_known_model,
    list_models,
    model_entry,
    model_options,
    register_model,
)

__all__ = [
    "ModelEntry",
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
