"""The figure of a sensitivity or specificity test: dissimilarity against functional difference, one
panel per measure, one colour per group, the pooled statistics in each title. Needs matplotlib
(imported lazily; without it the figure is skipped with a note)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..utils.io import atomic_path

#: the tick labels' font size (pt); titles and labels are a little larger. The figure is about 1400 px
#: wide, so at the report's page width these stay at about 10 px or more
FONT = 9

if TYPE_CHECKING:  # pragma: no cover
    from .report import GroundingReport


def plot_report(report: GroundingReport, path: str | Path) -> Path | None:
    """Write the figure to ``path`` (PNG); returns None when matplotlib is missing."""
    try:
        import matplotlib  # deferred: matplotlib loads only when a figure is drawn

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed, so no figure was drawn (pip install matplotlib)", file=sys.stderr)
        return None
    measures = report.measures()
    groups = list(dict.fromkeys(p["group"] for p in report.points))
    cols = min(3, max(1, len(measures)))
    rows = math.ceil(len(measures) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    for k, measure in enumerate(measures):
        ax = axes[k // cols][k % cols]
        for g, group in enumerate(groups):
            pts = [p for p in report.points if p["measure"] == measure and p["group"] == group]
            ax.scatter(
                [p["dissimilarity"] for p in pts],
                [p["functional_difference"] for p in pts],
                s=14,
                alpha=0.75,
                color=colours(g % colours.N),
                label=group,
            )
        st = report.stat(measure)
        ax.set_title(
            f"{measure}: ρ={_f(st['spearman'])}, τ={_f(st['kendall'])}, bad={_f(st['bad_fraction'])}", fontsize=FONT + 2
        )
        ax.set_xlabel("dissimilarity (from the measure's metadata)", fontsize=FONT + 1)
        ax.set_ylabel("|Δ probe accuracy|", fontsize=FONT + 1)
        ax.tick_params(labelsize=FONT)
    for k in range(len(measures), rows * cols):
        axes[k // cols][k % cols].axis("off")
    if len(groups) > 1:
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(groups), 8), fontsize=FONT, frameon=False)
    fig.suptitle(f"{report.test} test ({report.info.get('dataset', '')})", fontsize=FONT + 3)
    fig.tight_layout(rect=(0, 0.06 if len(groups) > 1 else 0, 1, 0.96))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _f(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"
