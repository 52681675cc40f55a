"""Figures of result records: the labelled heatmap of a :class:`~.records.Matrix` (the study report's
figures are drawn by it too), a bar chart of a :class:`~.records.Table`'s numeric columns, and box
plots of distributions given by their quartiles (:func:`summary_boxes`).

Figures are built as :class:`matplotlib.figure.Figure` objects, without pyplot: no backend is chosen
or switched and no global figure list grows, so the same code serves a headless report and a notebook
(where a returned figure is displayed as the cell's value). Draw into an existing axes with ``ax=``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StitchkitError

if TYPE_CHECKING:
    from .records import Matrix, Table

#: matrices with at most this many cells get their values written into the cells
ANNOTATE_CELLS = 144
#: the colour bar's ticks of a ratio matrix, where they fall inside its scale: powers of two, or where
#: fewer than three of them do (a scale within ½..2), these finer ones
RATIO_TICKS = tuple(2.0**k for k in range(-12, 13))
FINE_RATIO_TICKS = (0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0)
#: the colour map of each matrix kind, declared once for every heatmap (the study report's and the API's):
#: "more alike" is the same colour everywhere, so a distance's map is the similarity's reversed. An OOD
#: detector's AUROC is a distance (high: the detector tells stitched from genuine activations;
#: stitchkit.ood.matrices.METRIC_KINDS), so the API's ``ood.plot()`` and the report draw it alike.
KIND_CMAPS = {"similarity": "viridis", "accuracy": "viridis", "distance": "viridis_r", "ratio": "RdBu_r"}
#: where a title may break: after a space, an arrow joining two names or a slash; inside a piece still too
#: long, after an underscore (``fm_r18_s0``); never inside a word
TITLE_BREAKS = re.compile(r"(?<=[\s→↔/])")
NAME_BREAKS = re.compile(r"(?<=_)")
#: a title's characters per inch of figure width at font size 10
TITLE_CHARS_PER_INCH = 10


def _new_axes(ax, figsize: tuple[float, float]):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure  # deferred: matplotlib takes a second to import

    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()


def wrap_title(text: str, width: int) -> tuple[str, float]:
    """``text`` in lines of at most ``width`` characters, broken only at :data:`TITLE_BREAKS` (and
    :data:`NAME_BREAKS`); and the font
    scale (≤ 1) at which a piece longer than ``width`` (which cannot break) still fits."""
    lines = [""]
    pieces = [
        part
        for piece in TITLE_BREAKS.split(text)
        for part in (NAME_BREAKS.split(piece) if len(piece.rstrip()) > width else [piece])
    ]
    for piece in filter(None, pieces):
        if lines[-1].strip() and len(lines[-1]) + len(piece.rstrip()) > width:
            lines.append(piece.lstrip())
        else:
            lines[-1] += piece
    lines = [line.rstrip() for line in lines]
    return "\n".join(lines), min(1.0, width / max(1, max(map(len, lines))))


def set_title(ax, text: str, width_inches: float, fontsize: float = 10, *, figure: bool = False) -> None:
    """A title that fits ``width_inches``: wrapped at :data:`TITLE_BREAKS` and shrunk (not below 6 pt) only
    where one piece is too long; ``figure``: the figure's title (``ax`` is then the figure)."""
    text, scale = wrap_title(text, int(TITLE_CHARS_PER_INCH * width_inches * 10 / fontsize))
    size = max(6.0, fontsize * scale)
    (ax.suptitle if figure else ax.set_title)(text, fontsize=size)


def colour_scale(matrix: Matrix) -> tuple[float, float]:
    """The heatmap's ``(vmin, vmax)``: the matrix's range where it is finite, else its finite values'."""
    values = matrix.to_numpy()
    lo, hi = matrix.range or (None, None)
    finite = values[np.isfinite(values)]
    vmin = lo if lo is not None and math.isfinite(lo) else (float(finite.min()) if finite.size else 0.0)
    vmax = hi if hi is not None and math.isfinite(hi) else (float(finite.max()) if finite.size else 1.0)
    return vmin, (vmax if vmax > vmin else vmin + 1e-9)


def ratio_norm(values: np.ndarray):
    """The colour scale of a ratio: logarithmic and symmetric about 1 (½ and 2 equally far from the
    neutral middle colour), spanning the finite positive values."""
    from matplotlib.colors import LogNorm  # deferred, as in _new_axes

    positive = values[np.isfinite(values) & (values > 0)]
    spread = float(np.max(np.abs(np.log(positive)))) if positive.size else 0.0
    spread = max(spread, math.log(1.1))  # all near 1: still a visible scale
    return LogNorm(vmin=math.exp(-spread), vmax=math.exp(spread))


def heatmap(matrix: Matrix, ax=None, *, title: str | None = None, annotate: bool | None = None):
    """The matrix as a heatmap with row and column labels, its range as the colour scale (reversed for
    distances, so that "more alike" is always the same colour; for ratios a diverging logarithmic scale
    with 1 in the middle, :func:`ratio_norm`), values written into the cells of small matrices
    (``annotate``, default: at most :data:`ANNOTATE_CELLS` cells). Returns the figure."""
    values = matrix.to_numpy()
    rows, cols = matrix.rows, matrix.cols
    size = max(3.5, 0.5 * max(len(rows), len(cols)) + 2)
    fig, ax = _new_axes(ax, (size + 1.2, size))
    if matrix.kind == "ratio":
        norm = ratio_norm(values)
        image = ax.imshow(values, cmap=KIND_CMAPS["ratio"], norm=norm, aspect="auto")
        # how light each cell is: the diverging map is palest in the middle (a ratio of 1); a ratio
        # the log scale cannot place (≤ 0) is left blank, so it counts as pale too
        shades = 1 - 2 * np.abs(np.ma.filled(norm(values), 0.5) - 0.5)
    else:
        vmin, vmax = colour_scale(matrix)
        image = ax.imshow(values, cmap=KIND_CMAPS[matrix.kind], vmin=vmin, vmax=vmax, aspect="auto")
        shades = (values - vmin) / (vmax - vmin)
        if matrix.kind == "distance":
            shades = 1 - shades
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(matrix.col_label)
    ax.set_ylabel(matrix.row_label)
    # long titles (unit label + matrix name) wrap to the axes' width at separators, never inside a word
    set_title(ax, matrix.name if title is None else title, ax.get_position().width * fig.get_figwidth() + 1.0)
    if annotate if annotate is not None else len(rows) * len(cols) <= ANNOTATE_CELLS:
        for i in range(len(rows)):
            for j in range(len(cols)):
                v = values[i, j]
                if math.isfinite(v):
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="black" if shades[i, j] > 0.6 else "white",
                    )
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if matrix.kind == "ratio":  # plain numbers (0.5, 1, 2) instead of powers of ten
        ticks = [t for t in RATIO_TICKS if norm.vmin <= t <= norm.vmax]
        bar.set_ticks(ticks if len(ticks) >= 3 else [t for t in FINE_RATIO_TICKS if norm.vmin <= t <= norm.vmax])
        bar.ax.minorticks_off()
        bar.ax.yaxis.set_major_formatter("{x:.3g}")
    fig.tight_layout()
    return fig


def heatmaps(matrices: Sequence[Matrix], *, columns: int | None = None):
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


def summary_boxes(
    panels: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    columns: int = 4,
):
    """Box plots of distributions given by their summaries, one panel (own y axis) per key of ``panels``.

    Each box is a dict with ``label``, ``q25``, ``q50``, ``q75``, ``min`` and ``max`` (the box spans the
    quartiles with a line at the median, the whiskers reach min and max), optionally ``mean`` (a dot),
    ``reference`` (True: drawn grey, with a dashed line at its median across the panel, so the other
    boxes read against it) and ``note`` (a short text above the box). Returns the figure."""
    if not panels:
        raise StitchkitError("no distributions to draw")
    from matplotlib.figure import Figure  # deferred, as in _new_axes

    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    widest = max(len(boxes) for boxes in panels.values())
    fig = Figure(figsize=(columns * max(2.6, 0.32 * widest + 1.0), rows * 3.0 + 0.6))
    for k, (name, boxes) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, columns, k + 1)
        stats = [
            {
                "label": b["label"],
                "q1": b["q25"],
                "med": b["q50"],
                "q3": b["q75"],
                "whislo": b["min"],
                "whishi": b["max"],
            }
            for b in boxes
        ]
        drawn = ax.bxp(stats, showfliers=False, patch_artist=True)
        means = [(position, b["mean"]) for position, b in enumerate(boxes, start=1) if b.get("mean") is not None]
        if means:  # bxp draws means only when every box has one
            ax.plot(*zip(*means), linestyle="none", marker=".", color="black")
        for box, patch in zip(boxes, drawn["boxes"]):
            patch.set_facecolor("0.75" if box.get("reference") else "#9ecae1")
            if box.get("reference"):
                ax.axhline(box["q50"], color="0.4", linestyle="--", linewidth=0.8, zorder=0)
        top = max(b["max"] for b in boxes)
        for position, box in enumerate(boxes, start=1):
            if box.get("note"):
                ax.annotate(
                    str(box["note"]),
                    (position, top),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                )
        ax.set_title(str(name), fontsize=9)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
        if k % columns == 0 and ylabel:
            ax.set_ylabel(ylabel, fontsize=8)
        if xlabel:
            ax.set_xlabel(xlabel, fontsize=8)
        ax.margins(y=0.12)
    if title:
        set_title(fig, title, fig.get_figwidth() - 0.4, figure=True)
    fig.tight_layout()
    return fig


def _numeric(values: Sequence) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in present)


def bar_chart(
    table: Table, x: str | None = None, y: str | Sequence[str] | None = None, *, ax=None, title: str | None = None
):
    """Grouped bars: one group per row (labelled by column ``x``), one bar per numeric column in ``y``."""
    numeric = [c for c in table.columns if _numeric(table.column(c))]
    if x is None:
        x = next((c for c in table.columns if c not in numeric), None)
    ys = [y] if isinstance(y, str) else list(y) if y is not None else [c for c in numeric if c != x]
    for column in ys:
        if column not in numeric:
            raise StitchkitError(
                f"column {column!r} is not numeric, so it cannot be drawn as bars; numeric columns: "
                f"{', '.join(numeric) or 'none'}"
            )
    if not ys:
        raise StitchkitError("the table has no numeric column to draw")
    labels = [str(v) for v in table.column(x)] if x is not None else [str(i) for i in range(len(table))]
    fig, ax = _new_axes(ax, (max(4.0, 0.35 * len(labels) * len(ys) + 2), 3.5))
    width = 0.8 / len(ys)
    positions = np.arange(len(labels))
    for k, column in enumerate(ys):
        heights = [math.nan if v is None else float(v) for v in table.column(column)]
        ax.bar(positions + (k - (len(ys) - 1) / 2) * width, heights, width, label=column)
    ax.set_xticks(
        positions,
        labels,
        rotation=60 if len(labels) > 6 else 0,
        ha="right" if len(labels) > 6 else "center",
        fontsize=8,
    )
    if x is not None:
        ax.set_xlabel(x)
    if len(ys) > 1:
        ax.legend(fontsize=8)
    else:
        ax.set_ylabel(ys[0])
    ax.set_title(table.name if title is None else title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = [
    "ANNOTATE_CELLS",
    "KIND_CMAPS",
    "bar_chart",
    "colour_scale",
    "heatmap",
    "heatmaps",
    "ratio_norm",
    "set_title",
    "summary_boxes",
    "wrap_title",
]
