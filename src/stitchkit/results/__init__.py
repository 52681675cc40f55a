"""Result records shared by every report: a labelled :class:`Matrix` and a :class:`Table`, each with
its :class:`Provenance` (what, which models by content hash, options, conventions), ``to_dict`` /
``from_dict``, ``to_pandas()``, ``plot()`` and ``save()`` to CSV, JSON or Parquet (:mod:`stitchkit.utils.io`).

>>> from stitchkit.results import Matrix
>>> m = Matrix(["layer1.0"], ["layer1.0", "layer2.0"], [[0.9, 0.5]], kind="accuracy", range=(0, 1), name="DM accuracy")
>>> m["layer1.0", "layer2.0"]
0.5
"""

from .records import FORMATS, KINDS, Matrix, Provenance, Table

__all__ = ["FORMATS", "KINDS", "Matrix", "Provenance", "Table"]
