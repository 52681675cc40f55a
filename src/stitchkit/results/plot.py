"""Figures of result records: the labelled heatmap of a :class:`~.records.Matrix` (the study report's
figures are drawn by it too) and a bar chart of a :class:`~.records.Table`'s numeric columns.

Figures are built as :class:`matplotlib.figure.Figure` objects, without pyplot: no backend is chosen
or switched and no global figure list grows, so the same code serves a headless report and a notebook
(where a returned figure is displayed as the cell's value). Draw into an existing axes with ``ax=``.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import StitchkitError

if TYPE_CHECKING:
    from .records import Matrix, Table

#: matrices with at most this many cells get their values written into the cells
ANNOTATE_CELLS = 144


def _new_axes(ax, figsize: tuple[float, float]):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure  # deferred: matplotlib takes a second to import

    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()


def colour_scale(matrix: "Matrix") -> tuple[float, float]:
    """The heatmap's ``(vmin, vmax)``: the matrix's range where it is finite, else its finite values'."""
    values = matrix.to_numpy()
    lo, hi = matrix.range or (None, None)
    finite = values[np.isfinite(values)]
    vmin = lo if lo is not None and math.isfinite(lo) else (float(finite.min()) if finite.size else 0.0)
    vmax = hi if hi is not None and math.isfinite(hi) else (float(finite.max()) if finite.size else 1.0)
    return vmin, (vmax if vmax > vmin else vmin + 1e-9)


def heatmap(matrix: "Matrix", ax=None, *, title: str | None = None, annotate: bool | None = None):
    """The matrix as a heatmap with row and column labels, its range as the colour scale (reversed for
    distances, so that "more alike" is always the same colour), values written into the cells of small
    matrices (``annotate``, default: at most :data:`ANNOTATE_CELLS` cells). Returns the figure."""
    values = matrix.to_numpy()
    rows, cols = matrix.rows, matrix.cols
    vmin, vmax = colour_scale(matrix)
    size = max(3.5, 0.5 * max(len(rows), len(cols)) + 2)
    fig, ax = _new_axes(ax, (size + 1.2, size))
    cmap = "viridis_r" if matrix.kind == "distance" else "viridis"
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(matrix.col_label)
    ax.set_ylabel(matrix.row_label)
    # long titles (unit label + matrix name) wrap to the figure's width instead of being cut off
    ax.set_title(textwrap.fill(matrix.name if title is None else title, width=int(9 * (size + 1.2))), fontsize=10)
    if annotate if annotate is not None else len(rows) * len(cols) <= ANNOTATE_CELLS:
        for i in range(len(rows)):
            for j in range(len(cols)):
                v = values[i, j]
                if math.isfinite(v):
                    shade = (v - vmin) / (vmax - vmin)
                    if cmap.endswith("_r"):
                        shade = 1 - shade
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if shade > 0.6 else "white")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def heatmaps(matrices: Sequence["Matrix"], *, columns: int | None = None):
    """Several matrices' heatmaps side by side in one figure (``columns`` per row, default all)."""
    if not matrices:
        raise StitchkitError("no matrices to draw")
    columns = min(columns or len(matrices), len(matrices))
    rows = -(-len(matrices) // columns)
    size = max(3.5, 0.5 * max(max(m.shape) for m in matrices) + 2)
    from matplotlib.figure import Figure  # deferred, as in _new_axes

    fig = Figure(figsize=((size + 1.2) * columns, size * rows))
    for k, matrix in enumerate(matrices):
        heatmap(matrix, fig.add_subplot(rows, columns, k + 1))
    return fig


def _numeric(values: Sequence) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in present)


def bar_chart(table: "Table", x: str | None = None, y: str | Sequence[str] | None = None, *, ax=None, title: str | None = None):
    """Grouped bars: one group per row (labelled by column ``x``), one bar per numeric column in ``y``."""
    numeric = [c for c in table.columns if _numeric(table.column(c))]
    if x is None:
        x = next((c for c in table.columns if c not in numeric), None)
    ys = [y] if isinstance(y, str) else list(y) if y is not None else [c for c in numeric if c != x]
    for column in ys:
        if column not in numeric:
            raise StitchkitError(f"column {column!r} is not numeric, so it cannot be drawn as bars; numeric columns: {', '.join(numeric) or 'none'}")
    if not ys:
        raise StitchkitError("the table has no numeric column to draw")
    labels = [str(v) for v in table.column(x)] if x is not None else [str(i) for i in range(len(table))]
    fig, ax = _new_axes(ax, (max(4.0, 0.35 * len(labels) * len(ys) + 2), 3.5))
    width = 0.8 / len(ys)
    positions = np.arange(len(labels))
    for k, column in enumerate(ys):
        heights = [math.nan if v is None else float(v) for v in table.column(column)]
        ax.bar(positions + (k - (len(ys) - 1) / 2) * width, heights, width, label=column)
    ax.set_xticks(positions, labels, rotation=60 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center", fontsize=8)
    if x is not None:
        ax.set_xlabel(x)
    if len(ys) > 1:
        ax.legend(fontsize=8)
    else:
        ax.set_ylabel(ys[0])
    ax.set_title(table.name if title is None else title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["ANNOTATE_CELLS", "bar_chart", "colour_scale", "heatmap", "heatmaps"]
