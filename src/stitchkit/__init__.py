"""stitchkit: how similar are two networks' internal representations?

The package follows the flow of data:
``data`` -> ``models`` (registry, checkpoints, layer cutting) -> ``training`` -> methods -> ``cli``.

The Python API for notebooks (:mod:`stitchkit.api`) is here at the top: ``stitchkit.direct_match``,
``task_loss_match``, ``stitch_grid``, ``compare``, ``ood_test`` and ``list_layers``, with the result records
``stitchkit.Matrix`` and ``stitchkit.Table`` (:mod:`stitchkit.results`).
"""

__version__ = "0.1.0"

from .errors import StitchkitError  # noqa: E402
from .utils.lazy import lazy_exports  # noqa: E402

#: the API's names and the module each comes from: imported on first use, so that `import stitchkit`
#: (and the command line's help) does not import torch
_LAZY = {
    "ComparisonResult": "api",
    "OODTestResult": "api",
    "StitchGridResult": "api",
    "compare": "api",
    "direct_match": "api",
    "ood_test": "api",
    "stitch_grid": "api",
    "task_loss_match": "api",
    "list_layers": "api",
    "LayerInfo": "api",
    "Matrix": "results",
    "Table": "results",
    "Provenance": "results",
}

__all__ = ["StitchkitError", "__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
