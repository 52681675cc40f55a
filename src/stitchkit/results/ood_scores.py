"""How to read an OOD test's score distributions (torch-free, so that the study report can draw them
without importing the detectors): the rows of :meth:`stitchkit.ood.matrices.OODMatrices.score_rows`
(:data:`SCORE_COLUMNS`) as box plots per end layer (:func:`score_panels`, :func:`score_figure`, read
as :data:`SCORE_FIGURE_CAPTION` says), and what the norm ratio compares (:data:`NORM_DEFINITION`).

Scores are outlier scores (higher = more OOD, :mod:`stitchkit.ood.metrics`), and AUROC = P(stitched
score > genuine score) + ½·P(tie) whichever class is positive; so a stitched distribution lying below
the genuine one has an AUROC well below ½.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import StitchkitError
from .plot import summary_boxes

#: what the norm ratio of a stitch compares
NORM_DEFINITION = (
    "norm = L2 norm of one sample's whole activation tensor at the end layer (all channels and positions, or all "
    "tokens and features); norm ratio = mean norm of the stitched activations (evaluation test images) / mean norm "
    "of the end network's genuine activations (ID test images, the AUROC's ID side)"
)
#: the columns of :meth:`OODMatrices.score_rows` (``front_layer`` and ``auroc`` are None on the genuine rows)
SCORE_COLUMNS = (
    "end_layer",
    "front_layer",
    "detector",
    "activations",
    "n",
    "mean",
    "min",
    "q25",
    "q50",
    "q75",
    "max",
    "auroc",
)
#: how to read :func:`score_figure` (AUROC is the same whichever class is positive: :mod:`stitchkit.ood.metrics`)
SCORE_FIGURE_CAPTION = (
    "Per end layer, the grey box shows the detector's outlier scores (higher = more OOD) of the end network's genuine "
    "activations on "
    "the ID test set and each blue box those of one stitch's activations, labelled by its front layer with its AUROC "
    "above it (boxes "
    "span the quartiles with a line at the median, whiskers min to max, a dot at the mean, a dashed line at the "
    "genuine median); "
    "AUROC = P(stitched score > genuine score), so a stitch whose box lies above the grey one is flagged OOD (AUROC "
    "near 1), one level "
    "with it is indistinguishable (about 0.5), and one whose box lies below it is rated more typical than the genuine "
    "activations (AUROC well below 0.5: unlike the genuine activations too, in the other direction)."
)


def score_figure(rows: Sequence[Mapping[str, Any]], detector: str, *, title: str = ""):
    """The score distributions of ``detector`` (:func:`score_panels` of
    :meth:`~stitchkit.ood.matrices.OODMatrices.score_rows`)
    as box plots, one panel per end layer (read them as :data:`SCORE_FIGURE_CAPTION` says)."""
    panels = score_panels(rows, detector)
    if not panels:
        raise StitchkitError(f"no score distributions of detector {detector!r} to draw")
    title = f"{title} (above each stitch's box: its AUROC)" if title else "above each stitch's box: its AUROC"
    return summary_boxes(
        {f"end: {layer}": boxes for layer, boxes in panels.items()},
        title=title,
        xlabel="front layer of the stitch",
        ylabel=f"{detector} score (higher = more OOD)",
    )


def score_panels(rows: Sequence[Mapping[str, Any]], detector: str) -> dict[str, list[dict[str, Any]]]:
    """:meth:`~stitchkit.ood.matrices.OODMatrices.score_rows` (or the study table holding them) as the boxes of
    :func:`.plot.summary_boxes`: per end layer, the genuine box (the reference) and
    one box per stitch, labelled by its front layer, with its AUROC as the note."""
    panels: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("detector") != detector or any(row.get(k) is None for k in ("min", "q25", "q50", "q75", "max")):
            continue  # another detector's, or a distribution that was not recorded
        genuine = row.get("activations") == "genuine"
        auroc = row.get("auroc")
        note = None if genuine or auroc is None or not math.isfinite(auroc) else f"{auroc:.2f}"
        panels.setdefault(str(row["end_layer"]), []).append(
            {
                "label": "genuine" if genuine else str(row["front_layer"]),
                "reference": genuine,
                "note": note,
                **{k: row.get(k) for k in ("mean", "min", "q25", "q50", "q75", "max")},
            }
        )
    for boxes in panels.values():
        boxes.sort(key=lambda box: not box["reference"])  # the genuine box first; stitches keep their order
    return panels


__all__ = ["NORM_DEFINITION", "SCORE_COLUMNS", "SCORE_FIGURE_CAPTION", "score_figure", "score_panels"]
