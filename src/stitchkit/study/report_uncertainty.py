"""How the report shows how sure each number is: a heatmap beside a small panel of each cell's
uncertainty (the width of its confidence interval, or the standard deviation across network pairs),
markers on the similarity cells not above their permutation null, and tables that write each value with
its interval ("0.91 [0.89, 0.93]")."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from ..results import Matrix
from ..results.plot import ANNOTATE_CELLS
from .report_tables import MISSING

#: the marker of a cell whose permutation p-value is not below the significance level
NOT_ABOVE_NULL_MARKER = "x"


def not_above_null(matrix: Matrix, alpha: float) -> np.ndarray | None:
    """Cells whose permutation p-value is ≥ ``alpha`` (not distinguishable from unrelated representations);
    None without p-values."""
    if matrix.p_value is None:
        return None
    p = np.array(matrix.p_value, dtype=float)
    return np.isfinite(p) & (p >= alpha)


def spread_figure(matrix: Matrix, spread: np.ndarray | None, spread_title: str, markers: np.ndarray | None = None):
    """The matrix's heatmap (left; ``markers`` drawn as × on the cells they mark) and, when ``spread`` is
    given, a small grey panel of it (right), e.g. the interval width per cell. Returns the figure."""
    from matplotlib.figure import Figure  # deferred: matplotlib loads only for the report

    size = max(3.5, 0.5 * max(matrix.shape) + 2)
    fig = Figure(figsize=(size * (1.75 if spread is not None else 1) + 1.2, size))
    grid = fig.add_gridspec(1, 2, width_ratios=[1, 0.75]) if spread is not None else fig.add_gridspec(1, 1)
    ax = fig.add_subplot(grid[0, 0])
    matrix.plot(ax=ax)
    if markers is not None and markers.any():
        i, j = np.nonzero(markers)
        # in the cell's upper right corner, clear of the value written in its middle
        ax.scatter(
            j + 0.3,
            i - 0.3,
            marker=NOT_ABOVE_NULL_MARKER,
            s=30,
            color="red",
            linewidths=1.2,
            label="p ≥ α (not above the null)",
        )
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), fontsize=7, frameon=False)
    if spread is not None:
        side = fig.add_subplot(grid[0, 1])
        finite = spread[np.isfinite(spread)]
        image = side.imshow(
            spread,
            cmap="Greys",
            vmin=0,
            vmax=float(finite.max()) if finite.size and finite.max() > 0 else 1,
            aspect="auto",
        )
        side.set_xticks(range(len(matrix.cols)), matrix.cols, rotation=60, ha="right", fontsize=8)
        side.set_yticks(range(len(matrix.rows)), [] if len(matrix.rows) > 1 else matrix.rows, fontsize=8)
        side.set_title(spread_title, fontsize=9)
        if spread.size <= ANNOTATE_CELLS:
            top = float(finite.max()) if finite.size else 1.0
            for (r, c), v in np.ndenumerate(spread):
                if math.isfinite(v):
                    side.text(
                        c,
                        r,
                        f"{v:.2g}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v > 0.6 * top else "black",
                    )
        fig.colorbar(image, ax=side, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def interval_width(matrix: Matrix) -> np.ndarray:
    lower, upper = matrix.ci()
    return upper - lower


def interval_caption(matrix: Matrix, alpha: float) -> str:
    """How to read a matrix's uncertainty panel and markers."""
    spec = matrix.interval or {}
    parts = []
    if matrix.has_interval:
        parts.append(
            f"right: the width of each cell's {_percent(spec.get('level'))} confidence interval (upper − lower; "
            f"{spec.get('method', 'bootstrap')}, "
            f"{spec.get('resamples', '?')} resamples of the test images, seed {spec.get('seed', '?')})"
        )
    if matrix.p_value is not None:
        parts.append(
            f"× marks cells whose permutation p-value ({spec.get('permutations', '?')} permutations of the sample "
            f"correspondence) is ≥ α = {alpha:g}: not above what unrelated representations of these shapes give"
        )
    return "; ".join(parts)


def _percent(level: Any) -> str:
    return f"{100 * level:g}%" if isinstance(level, (int, float)) else "?"


def cell_text(value: float, lower: float | None = None, upper: float | None = None, p: float | None = None) -> str:
    """ "0.91 [0.89, 0.93]", with ", p = 0.01" when a p-value is given; a dash for a missing value."""
    if value is None or not math.isfinite(value):
        return MISSING
    text = f"{value:.3g}"
    if lower is not None and upper is not None and math.isfinite(lower) and math.isfinite(upper):
        text += f" [{lower:.3g}, {upper:.3g}]"
    if p is not None and math.isfinite(p):
        text += f", p = {p:.2g}"
    return text


def interval_table_html(matrix: Matrix) -> str:
    """The matrix as an HTML table of values with their intervals (and p-values), folded away under a summary."""
    lower, upper, pv = (
        np.array(g, dtype=float) if g is not None else None for g in (matrix.lower, matrix.upper, matrix.p_value)
    )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [matrix.corner, *matrix.cols])
    body = "".join(
        f"<tr><td>{html.escape(r)}</td>"
        + "".join(
            "<td>"
            + html.escape(
                cell_text(matrix.values[i][j], *(None if g is None else float(g[i, j]) for g in (lower, upper, pv)))
            )
            + "</td>"
            for j in range(len(matrix.cols))
        )
        + "</tr>"
        for i, r in enumerate(matrix.rows)
    )
    what = (
        f"values with {_percent((matrix.interval or {}).get('level'))} intervals" if matrix.has_interval else "values"
    ) + (" and permutation p-values" if matrix.p_value is not None else "")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<details><summary>{html.escape(matrix.name)}: {what}</summary>{table}</details>"
