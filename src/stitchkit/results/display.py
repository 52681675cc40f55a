"""How results describe themselves: a few lines of text (``repr``), a small HTML table (what a
notebook shows for a result that is a cell's value) and ``summary()``, all from one
:class:`Description` (a title, a few facts, the result's matrices with a headline number each).

``summary()`` returns a :class:`Summary`: a ``str`` that shows as its text, so that
``result.summary()`` as a notebook cell's value and ``print(result.summary())`` read alike.

Each matrix gets one line: its mean, its range and its extreme cell (the highest value, or the lowest
for a distance, where "more alike" is low; none for a ratio, whose extreme could be either side of
1), and, where the rows and columns are the same layers, the mean over the same-named pairs.

Figures: :func:`inline` makes the figure a ``plot()`` returns show itself in a notebook (:mod:`.figure`).
"""

from __future__ import annotations

import html
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .records import Matrix

#: at most this many labels are listed in a line of text (the first and last ones, with the count)
SHOWN_LABELS = 6
#: at most this many matrices get a line in a result's repr (summary() lists them all)
REPR_MATRICES = 4
#: at most this many rows and columns of a matrix, and rows of a table, in their HTML tables
HTML_CELLS = 12


class Summary(str):
    """Text that shows as itself (no quotes or ``\\n`` escapes) as a notebook cell's value or in a REPL."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # IPython's plain-text display
        printer.text(str(self))


def number(value: Any) -> str:
    """A number for people: three significant digits, ``–`` where nothing was measured."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.3g}"
    return str(value)


def labels(names: Sequence[str], shown: int = SHOWN_LABELS) -> str:
    """``a, b, c`` or, for many, ``a, b, c, …, y, z (12)``."""
    names = [str(n) for n in names]
    if len(names) <= shown:
        return ", ".join(names)
    head = shown // 2 + shown % 2
    return f"{', '.join(names[:head])}, …, {', '.join(names[len(names) - (shown - head) :])} ({len(names)})"


def matrix_stats(matrix: Matrix) -> dict[str, Any]:
    """The numbers of a matrix's line: ``measured`` cells of ``cells``, ``mean``, ``min``, ``max``, the
    extreme cell ``extreme = (which, value, row, col)`` (``which`` "highest" or "lowest"; None for a
    ratio) and ``same_layer_mean`` (None unless the rows and columns are the same labels)."""
    values = matrix.to_numpy()
    finite = np.isfinite(values)
    stats: dict[str, Any] = {
        "cells": int(values.size),
        "measured": int(finite.sum()),
        "mean": None,
        "min": None,
        "max": None,
        "extreme": None,
        "same_layer_mean": None,
    }
    if not finite.any():
        return stats
    picked = np.where(finite, values, np.nan)
    stats.update(mean=float(np.nanmean(picked)), min=float(np.nanmin(picked)), max=float(np.nanmax(picked)))
    if matrix.kind != "ratio":
        lowest = matrix.kind == "distance"
        i, j = np.unravel_index(int(np.nanargmin(picked) if lowest else np.nanargmax(picked)), values.shape)
        stats["extreme"] = ("lowest" if lowest else "highest", float(values[i, j]), matrix.rows[i], matrix.cols[j])
    if matrix.rows == matrix.cols and len(matrix.rows) > 1:
        diagonal = np.diag(values)
        if np.isfinite(diagonal).any():
            stats["same_layer_mean"] = float(np.nanmean(np.where(np.isfinite(diagonal), diagonal, np.nan)))
    return stats


def matrix_line(matrix: Matrix) -> str:
    """One line of numbers: ``mean 0.41, 0.1 to 0.63, highest 0.63 at (layer3.1, layer3.1)``."""
    s = matrix_stats(matrix)
    if s["mean"] is None:
        return f"nothing measured ({s['cells']} cells)"
    parts = [f"mean {number(s['mean'])}", f"{number(s['min'])} to {number(s['max'])}"]
    if s["extreme"] is not None:
        which, value, row, col = s["extreme"]
        parts.append(f"{which} {number(value)} at ({row}, {col})")
    if s["same_layer_mean"] is not None:
        parts.append(f"same layers {number(s['same_layer_mean'])}")
    if s["measured"] < s["cells"]:
        parts.append(f"{s['measured']} of {s['cells']} cells measured")
    return ", ".join(parts)


def kind_text(matrix: Matrix) -> str:
    """``accuracy in [0, 1]``, ``distance ≥ 0``: the matrix's kind and range."""
    lo, hi = matrix.range or (None, None)
    if lo is not None and hi is not None:
        return f"{matrix.kind} in [{number(lo)}, {number(hi)}]"
    if lo is not None:
        return f"{matrix.kind} ≥ {number(lo)}"
    return matrix.kind if hi is None else f"{matrix.kind} ≤ {number(hi)}"


@dataclass
class Description:
    """What a result says about itself: a ``title`` line, ``facts`` (label → text: the networks, the
    layers, the data), its ``matrices`` (name → :class:`~.records.Matrix`, a line each) and ``notes``
    (lines only :meth:`lines` with ``brief=False`` gives)."""

    title: str
    facts: dict[str, str] = field(default_factory=dict)
    matrices: Mapping[str, Matrix] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lines(self, *, brief: bool = False) -> list[str]:
        """The text: the title, the facts, one line per matrix (brief: the first :data:`REPR_MATRICES`)
        and, unless brief, the notes."""
        out = [self.title, *(f"  {label}: {text}" for label, text in self.facts.items())]
        items = list(self.matrices.items())
        shown = items[:REPR_MATRICES] if brief else items
        out += [f"  {name}: {matrix_line(matrix)}" for name, matrix in shown]
        if len(shown) < len(items):
            out.append(f"  … {len(items) - len(shown)} more matrices: summary() lists them")
        if not brief:
            out += [f"  {note}" for note in self.notes]
        return out

    def text(self, *, brief: bool = False) -> str:
        return "\n".join(self.lines(brief=brief))

    def html(self) -> str:
        """The title, the facts and one table row per matrix (its numbers in columns)."""
        facts = "".join(
            f"<tr><th style='text-align:left'>{_e(k)}</th><td style='text-align:left' colspan='6'>{_e(v)}</td></tr>"
            for k, v in self.facts.items()
        )
        rows = []
        for name, matrix in self.matrices.items():
            s = matrix_stats(matrix)
            extreme = (
                ""
                if s["extreme"] is None
                else f"{s['extreme'][0]} {number(s['extreme'][1])} at ({s['extreme'][2]}, {s['extreme'][3]})"
            )
            cells = [
                name,
                kind_text(matrix),
                number(s["mean"]),
                number(s["min"]),
                number(s["max"]),
                extreme,
                number(s["same_layer_mean"]),
            ]
            rows.append("<tr>" + "".join(f"<td style='text-align:left'>{_e(c)}</td>" for c in cells) + "</tr>")
        header = ""
        if rows:
            header = (
                "<tr>"
                + "".join(
                    f"<th style='text-align:left'>{h}</th>"
                    for h in ("matrix", "kind", "mean", "min", "max", "extreme cell", "same layers")
                )
                + "</tr>"
            )
        notes = "".join(f"<br><small>{_e(n)}</small>" for n in self.notes)
        return f"<div><b>{_e(self.title)}</b><table>{facts}{header}{''.join(rows)}</table>{notes}</div>"


def _e(text: Any) -> str:
    return html.escape(str(text))


def html_grid(header: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str = "", note: str = "") -> str:
    """A plain HTML table (cells formatted by :func:`number`, escaped) with a caption and a note below."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(number(c))}</td>" for c in row) + "</tr>" for row in rows)
    caption_html = f"<caption style='text-align:left'>{_e(caption)}</caption>" if caption else ""
    note_html = f"<small>{_e(note)}</small>" if note else ""
    return f"<div><table>{caption_html}<tr>{head}</tr>{body}</table>{note_html}</div>"


def inline(figure):
    """``figure``, shown inline by IPython from now on: a plain :class:`matplotlib.figure.Figure` becomes
    a :class:`~.figure.InlineFigure` (the same object, its class swapped for a subclass that adds
    ``_repr_png_`` and no state); a figure of any other class is returned as it is. ``plot()`` applies
    it to the figures it makes, not to one the caller gave an ``ax`` of (a pyplot figure shows already)."""
    from matplotlib.figure import (
        Figure,  # deferred: matplotlib takes a second to import (loaded already where a figure exists)
    )

    from .figure import InlineFigure

    if type(figure) is Figure:
        figure.__class__ = InlineFigure
    return figure


class Described(ABC):
    """``repr`` (a few lines), ``_repr_html_`` (a small table, a notebook's display) and ``summary()``
    (every line), all from :meth:`description`. A dataclass using it needs ``repr=False``."""

    @abstractmethod
    def description(self) -> Description:
        """What the result says about itself."""

    def summary(self) -> Summary:
        """A short text: what was computed, on which networks and layers, and one line of numbers per
        matrix (mean, range, extreme cell); printed or shown as a cell's value alike."""
        return Summary(self.description().text())

    def __repr__(self) -> str:
        return self.description().text(brief=True)

    def _repr_html_(self) -> str:
        return self.description().html()


__all__ = [
    "Description",
    "Described",
    "HTML_CELLS",
    "REPR_MATRICES",
    "SHOWN_LABELS",
    "Summary",
    "html_grid",
    "inline",
    "kind_text",
    "labels",
    "matrix_line",
    "matrix_stats",
    "number",
]
