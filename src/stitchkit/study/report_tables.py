"""The report's tables as HTML: columns in a reading order (what a row is about first, then its
numbers), numbers with one number of decimals per column, a dash where a value is missing, and rows
marked where a check fails. The CSV files keep every value as stored."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Any

#: what the report writes for a missing or non-finite value (never "nan" or "None")
MISSING = "—"
#: columns that say what a row is about, in this order, before every other column
KEY_COLUMNS = (
    "kind",
    "unit",
    "network",
    "measure",
    "scope",
    "end_layer",
    "detector",
    "activations",
    "layer",
    "front_layer",
    "rank",
    "passes",
    "error",
)
#: columns of numbers, in this order, after the key columns (others follow in the order the rows give them)
VALUE_COLUMNS = (
    "test accuracy",
    "top-5",
    "auroc",
    "aupr",
    "fpr95",
    "spearman",
    "spearman_p",
    "kendall",
    "kendall_p",
    "bad_fraction",
    "min",
    "q25",
    "q50",
    "mean",
    "q75",
    "max",
    "n",
    "done",
    "failed",
    "left",
    "seconds",
    "content hash",
)

#: the suffixes of a value's interval columns ("test accuracy (lower)"), which come right after the value
BOUND_SUFFIXES = ("lower)", "upper)", "p)")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def column_order(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The rows' columns: :data:`KEY_COLUMNS` first, then other columns of text, then :data:`VALUE_COLUMNS`, then
    other columns of numbers (each group in its own order, or the rows' order for columns it does not name)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def rank(column: str) -> tuple[int, int, int]:
        base, _, bound = column.rpartition(" (")
        if bound in BOUND_SUFFIXES and (base in VALUE_COLUMNS or base in columns):  # a value's bounds follow it
            group, position, _ = rank(base)
            return group, position, 1 + BOUND_SUFFIXES.index(bound)
        if column in KEY_COLUMNS:
            return 0, KEY_COLUMNS.index(column), 0
        if column in VALUE_COLUMNS:
            return 2, VALUE_COLUMNS.index(column), 0
        numeric = all(_is_number(r.get(column)) or r.get(column) is None for r in rows)
        return (3 if numeric else 1), columns.index(column), 0

    return sorted(columns, key=rank)


#: a column whose non-zero magnitudes span more than this factor (e.g. several detectors' scores) gets three
#: significant digits per cell instead of one number of decimals
WIDE_RANGE = 100.0


def number_format(values: Sequence[Any]) -> Callable[[float], str]:
    """How a column writes its numbers: integers as they are; else one number of decimals for the whole
    column, three significant digits at its median magnitude (0.5 → "0.500", 0.0919 → "0.0919", 15.3 →
    "15.3", 3403 → "3403"); a column spanning more than :data:`WIDE_RANGE` gets three significant digits per
    cell (never the exponent notation)."""
    numbers = [v for v in values if _is_number(v)]
    if numbers and all(isinstance(v, int) for v in numbers):
        return str
    magnitudes = sorted(abs(float(v)) for v in numbers if math.isfinite(v) and v != 0)
    if magnitudes and magnitudes[-1] / magnitudes[0] > WIDE_RANGE:
        return lambda v: f"{v:.{max(0, 2 - math.floor(math.log10(abs(v))))}f}" if v else "0"
    places = max(0, min(6, 2 - math.floor(math.log10(magnitudes[len(magnitudes) // 2])))) if magnitudes else 0
    return lambda v: f"{float(v):.{places}f}"


def cell(value: Any, number: Callable[[float], str] = str) -> str:
    """One value as the report writes it (HTML-escaped): numbers by ``number`` (:func:`number_format`), a
    dash for a missing or non-finite one, yes / no for a truth value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _is_number(value):
        return number(value)
    return html.escape(str(value))


def html_table(rows: Sequence[dict[str, Any]], row_class: Callable[[dict[str, Any]], str | None] | None = None) -> str:
    """The rows as an HTML table (:func:`column_order`, :func:`number_format`); ``row_class`` gives a row a CSS class
    (e.g. ``fail``), or None."""
    columns = column_order(rows)
    formats = {c: number_format([r.get(c) for r in rows]) for c in columns}
    numeric = {
        c
        for c in columns
        if any(_is_number(r.get(c)) for r in rows) and all(_is_number(r.get(c)) or r.get(c) is None for r in rows)
    }

    def td(c: str, v: Any) -> str:
        return f'<td class="num">{cell(v, formats[c])}</td>' if c in numeric else f"<td>{cell(v, formats[c])}</td>"

    head = "".join(f"<th{' class=num' if c in numeric else ''}>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f"<tr{(' class=' + cls) if row_class and (cls := row_class(r)) else ''}>"
        + "".join(td(c, r.get(c)) for c in columns)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


#: the tables' styles (the report puts them in its page head): text left, numbers right, failed checks red
CSS = """
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fde8e6; color: #8a1c12; } tr.fail td:first-child { border-left: 4px solid #b42318; }
"""
