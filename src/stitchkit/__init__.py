"""stitchkit: how similar are two networks' internal representations?

The package follows the flow of data:
``data`` -> ``models`` (registry, checkpoints, layer cutting) -> ``training`` -> methods -> ``cli``.
"""

__version__ = "0.1.0"

from .errors import StitchkitError  # noqa: E402

__all__ = ["StitchkitError", "__version__"]
