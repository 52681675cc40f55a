"""The Python API for notebooks: short functions over the library, each taking models (an ``nn.Module``
that ``torch.fx`` can trace, a checkpoint path or a registered model name) and data (a dataset name, a
torch ``Dataset`` or a ``DataLoader``; :mod:`.inputs`), each returning a typed result with
``to_pandas()`` and ``plot()`` built on :mod:`stitchkit.results`' records.

* :func:`direct_match`, :func:`task_loss_match`, :func:`stitch_grid` → :class:`StitchGridResult` (:mod:`.stitch`);
* :func:`compare` → :class:`ComparisonResult` (:mod:`.similarity`);
* :func:`ood_test` → :class:`OODTestResult` (:mod:`.ood`);
* :func:`list_layers` → a :class:`LayerInfo` per stitchable layer of a model in memory (:mod:`.layers`).

Every result shows itself in a notebook: a compact ``repr``, a small HTML table, ``summary()`` (a short
text) and ``plot()`` figures that display without ``%matplotlib inline`` (:mod:`stitchkit.results.display`).

They are re-exported as ``stitchkit.direct_match`` etc., loaded on first use.
"""

from .layers import LayerInfo, list_layers
from .ood import OODTestResult, ood_test
from .similarity import ComparisonResult, compare
from .stitch import StitchGridResult, direct_match, stitch_grid, task_loss_match

__all__ = [
    "ComparisonResult",
    "LayerInfo",
    "OODTestResult",
    "StitchGridResult",
    "compare",
    "direct_match",
    "list_layers",
    "ood_test",
    "stitch_grid",
    "task_loss_match",
]
