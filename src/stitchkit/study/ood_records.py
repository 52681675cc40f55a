"""What an OOD unit records beside its AUROC matrices so that a reader can interpret them, and the
report's figures of it.

An AUROC far below ½ means the detector rates the stitched activations as *more typical* than the end
network's genuine ones, and an AUROC of 1 says nothing about how they differ. Beside the
``"AUROC (<detector>)"`` matrices an OOD unit therefore stores (names stable: the findings read them)

* the matrix :data:`NORM_RATIO_MATRIX`, front × end: mean activation norm of the stitched / of the
  genuine activations at the end layer (:data:`~stitchkit.results.ood_scores.NORM_DEFINITION`);
* the table :data:`SCORE_TABLE`: each detector's score distribution, one row per (end layer,
  detector) for the genuine activations and one per (front layer, end layer, detector) for the
  stitched ones (columns :data:`~stitchkit.results.ood_scores.SCORE_COLUMNS`);

and the report draws the table as one box-plot figure per detector (:func:`score_figures`), placed with
the unit's AUROC and norm-ratio heatmaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..results.ood_scores import NORM_DEFINITION, SCORE_FIGURE_CAPTION, score_figure
from ..utils.io import json_safe
from .store import UnitRecord

if TYPE_CHECKING:  # the report imports this module and must not import torch
    from ..ood.matrices import OODMatrices

#: the front × end matrix of mean stitched / mean genuine activation norm
NORM_RATIO_MATRIX = "norm ratio (stitched / genuine)"
#: the table of score distributions (genuine and stitched, per detector)
SCORE_TABLE = "OOD score distributions"
#: how to read the norm-ratio heatmap
NORM_RATIO_CAPTION = (
    f"{NORM_DEFINITION}; 1 = the same scale, red = the stitched activations are larger, blue = smaller "
    "(logarithmic colour scale)"
)


def norm_ratio_matrix(matrices: OODMatrices) -> dict[str, Any]:
    """The unit's :data:`NORM_RATIO_MATRIX` entry (a study matrix: rows, cols, values, kind, range, caption)."""
    return {
        "rows": matrices.front_layers,
        "cols": matrices.end_layers,
        "values": json_safe(matrices.matrix("norm_ratio")),
        "kind": "ratio",
        "range": [0, None],
        "caption": NORM_RATIO_CAPTION,
    }


def score_table(matrices: OODMatrices) -> list[dict[str, Any]]:
    """The unit's :data:`SCORE_TABLE` rows (:meth:`~stitchkit.ood.matrices.OODMatrices.score_rows`)."""
    return json_safe(matrices.score_rows())


def score_figure_name(detector: str) -> str:
    """The name of an OOD unit's score-distribution figure of one detector (its report stem's last part)."""
    return f"score distributions ({detector})"


@dataclass
class UnitFigure:
    """A figure a unit's records are drawn as in the report: its name (the file stem's last part), the
    matplotlib figure, how to read it, and the name of the table it shows."""

    name: str
    figure: Any
    caption: str
    table: str


def score_figures(record: UnitRecord) -> list[UnitFigure]:
    """One box-plot figure per detector of an OOD unit's :data:`SCORE_TABLE` (none for a unit that did
    not store it)."""
    rows = (record.metrics.get("tables") or {}).get(SCORE_TABLE) or []
    heatmaps = [
        name[len("AUROC (") : -1] for name in record.metrics.get("matrices") or {} if name.startswith("AUROC (")
    ]
    # in the order of the unit's AUROC heatmaps (the store keeps a unit's matrices sorted by name)
    detectors = sorted(
        dict.fromkeys(row["detector"] for row in rows),
        key=lambda name: heatmaps.index(name) if name in heatmaps else len(heatmaps),
    )
    return [
        UnitFigure(
            score_figure_name(name),
            score_figure(rows, name, title=f"{record.label}: {name} scores, genuine vs stitched"),
            SCORE_FIGURE_CAPTION,
            SCORE_TABLE,
        )
        for name in detectors
    ]


__all__ = [
    "NORM_DEFINITION",
    "NORM_RATIO_CAPTION",
    "NORM_RATIO_MATRIX",
    "SCORE_TABLE",
    "UnitFigure",
    "norm_ratio_matrix",
    "score_figure_name",
    "score_figures",
    "score_table",
]
