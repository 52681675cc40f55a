"""The two result records every report can return: a labelled :class:`Matrix` (front × end layers, layer
× layer, layer × rank, …) and a :class:`Table` of rows, each with its :class:`Provenance`.

Both are plain data (lists, floats, strings) with ``to_dict`` / ``from_dict`` (JSON-safe: a missing
value is ``None``), ``to_pandas()``, ``plot()`` (a matplotlib figure) and ``save(path)``, which writes
CSV, JSON or Parquet by the file's suffix (the package's one writer stack, :mod:`stitchkit.utils.io`).
JSON keeps everything; CSV and Parquet keep the values and the labels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import StitchkitError, unknown_name
from ..utils.io import (
    json_safe,
    read_csv,
    read_json,
    read_parquet,
    write_csv_atomic,
    write_json_atomic,
    write_parquet_atomic,
)
from .display import HTML_CELLS, Described, Description, html_grid, inline, kind_text, labels, matrix_line
from .plot import bar_chart, heatmap

# : what a matrix's values are: "similarity" (higher = more alike), "distance" (lower = more alike), "accuracy" (a
# fraction),
#: "ratio" (a positive ratio, 1 = equal)
KINDS = ("similarity", "distance", "accuracy", "ratio")
#: the file formats of :meth:`Matrix.save` and :meth:`Table.save`, by suffix
FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}


@dataclass
class Provenance:
    """Where a result came from: what was measured, on which models (by content hash, keyed by their
    role, e.g. ``{"front": …, "end": …}``), with which options and conventions, by which version."""

    what: str = ""
    models: dict[str, str | None] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    conventions: dict[str, str] = field(default_factory=dict)
    stitchkit_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Provenance:
        data = dict(data or {})
        known = {"what", "models", "options", "conventions", "stitchkit_version"}
        return cls(**{k: v for k, v in data.items() if k in known})


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _check_file(path: str | os.PathLike) -> tuple[Path, str]:
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise StitchkitError(
            f"cannot tell the format of {str(path)!r} from its suffix; use one of {', '.join(FORMATS)}"
        )
    return path, fmt


#: a matrix's optional grids beside its values, and the suffix of their CSV / Parquet columns
BOUND_FIELDS = ("lower", "upper", "p_value")
BOUND_SUFFIX = {"lower": "lower", "upper": "upper", "p_value": "p"}


@dataclass(repr=False)
class Matrix(Described):
    """``values[i][j]`` belongs to row ``rows[i]`` and column ``cols[j]`` (NaN where nothing was measured).

    ``kind`` is one of :data:`KINDS`; ``range`` the interval the values lie in (``(lo, hi)``, either end
    ``None`` when open, e.g. ``(0, None)`` for a residual), used as the colour scale of :meth:`plot`.
    ``row_label`` / ``col_label`` name the axes, ``name`` the quantity (the plot's title).

    How sure each value is, where it was measured: ``lower`` / ``upper`` the bounds of its confidence
    interval and ``p_value`` its permutation p-value against the null of unrelated representations
    (each the shape of ``values``, NaN where a cell has none; None when the matrix has none at all), and
    ``interval`` how they were made (``level``, ``resamples``, ``method``, ``seed``, ``permutations``, …).
    """

    rows: list[str]
    cols: list[str]
    values: list[list[float]]
    kind: str = "similarity"
    range: tuple[float | None, float | None] | None = None
    row_label: str = "front layer"
    col_label: str = "end layer"
    name: str = ""
    provenance: Provenance = field(default_factory=Provenance)
    lower: list[list[float]] | None = None
    upper: list[list[float]] | None = None
    p_value: list[list[float]] | None = None
    interval: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = [str(r) for r in self.rows]
        self.cols = [str(c) for c in self.cols]
        self.values = self._grid(self.values, "values")
        for extra in BOUND_FIELDS:
            if getattr(self, extra) is not None:
                setattr(self, extra, self._grid(getattr(self, extra), extra))
        if (self.lower is None) != (self.upper is None):
            raise StitchkitError("a matrix's interval needs both bounds (lower and upper) or neither")
        self.interval = dict(self.interval or {})
        if self.kind not in KINDS:
            raise unknown_name("matrix kind", str(self.kind), KINDS)
        if self.range is not None:
            lo, hi = (list(self.range) + [None, None])[:2]
            self.range = (None if lo is None else float(lo), None if hi is None else float(hi))
        if isinstance(self.provenance, Mapping):
            self.provenance = Provenance.from_dict(self.provenance)

    def _grid(self, values: Any, what: str) -> list[list[float]]:
        """``values`` as a list of row lists of floats, checked against the labels."""
        if hasattr(values, "tolist"):  # a numpy array
            values = values.tolist()
        values = [[_float(v) for v in row] for row in values]
        if len(values) != len(self.rows) or any(len(row) != len(self.cols) for row in values):
            shape = (len(values), max((len(row) for row in values), default=0))
            raise StitchkitError(
                f"a matrix of {len(self.rows)} rows and {len(self.cols)} columns got {what} of shape {shape}"
            )
        return values

    # --- access ----------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.cols)

    @property
    def has_interval(self) -> bool:
        return self.lower is not None

    def ci(self, row: str | None = None, col: str | None = None):
        """The confidence interval: of one cell, ``(lower, upper)`` by labels; of every cell (no labels),
        two arrays shaped like :meth:`to_numpy`. Refused when the matrix has none (turn the bootstrap on)."""
        if self.lower is None or self.upper is None:
            raise StitchkitError(
                f"the matrix {self.name or '(unnamed)'!r} has no confidence intervals; compute it with bootstrap "
                "resamples (e.g. bootstrap=1000, or --bootstrap 1000)"
            )
        if row is None and col is None:
            return np.array(self.lower, dtype=float), np.array(self.upper, dtype=float)
        i, j = self._index(row, col)
        return self.lower[i][j], self.upper[i][j]

    def __getitem__(self, key: tuple[str, str]) -> float:
        """``matrix[row, col]`` by labels."""
        i, j = self._index(*key)
        return self.values[i][j]

    def _index(self, row: Any, col: Any) -> tuple[int, int]:
        for known, label, what in ((self.rows, row, self.row_label), (self.cols, col, self.col_label)):
            if label not in known:
                raise StitchkitError(f"{label!r} is not a {what} of this matrix; it has {', '.join(known)}")
        return self.rows.index(row), self.cols.index(col)

    def to_numpy(self) -> np.ndarray:
        return np.array(self.values, dtype=float).reshape(self.shape)

    def to_pandas(self):
        """A DataFrame indexed by the rows (named ``row_label``) with one column per ``cols`` entry."""
        import pandas as pd  # deferred: pandas takes a second to import, and only these two methods need it

        return pd.DataFrame(
            self.to_numpy(),
            index=pd.Index(self.rows, name=self.row_label),
            columns=pd.Index(self.cols, name=self.col_label),
        )

    def plot(self, ax=None, *, title: str | None = None, annotate: bool | None = None):
        """A labelled heatmap (:func:`.plot.heatmap`); returns the matplotlib figure (drawn into ``ax``'s, or
        a new one that a notebook shows by itself: :func:`.display.inline`)."""
        figure = heatmap(self, ax=ax, title=title, annotate=annotate)
        return figure if ax is not None else inline(figure)

    # --- display ---------------------------------------------------------------------------------
    def description(self) -> Description:
        """The title (name, kind and range, shape), the row and column labels, the line of numbers and,
        for :meth:`summary`, what was measured on which models and how sure it is."""
        notes = []
        if self.provenance.what:
            models = ", ".join(f"{role} {str(digest)[:8]}" for role, digest in self.provenance.models.items() if digest)
            notes.append(self.provenance.what + (f" (models {models})" if models else ""))
        if self.has_interval:
            notes.append("with confidence intervals: " + ", ".join(f"{k} {v}" for k, v in self.interval.items()))
        if self.p_value is not None:
            notes.append("with permutation p-values (matrix.p_value)")
        title = (
            f"Matrix{f' {self.name!r}' if self.name else ''}: {kind_text(self)}, {self.shape[0]} × {self.shape[1]} "
            f"({self.row_label} × {self.col_label})"
        )
        return Description(
            title,
            {f"rows ({self.row_label})": labels(self.rows), f"columns ({self.col_label})": labels(self.cols)},
            {"values": self},
            notes,
        )

    def _repr_html_(self) -> str:
        """The values (the first :data:`~.display.HTML_CELLS` rows and columns), the title above, the
        line of numbers below."""
        rows, cols = self.rows[:HTML_CELLS], self.cols[:HTML_CELLS]
        cut = "" if (len(rows), len(cols)) == self.shape else f"; first {len(rows)} rows and {len(cols)} columns shown"
        return html_grid(
            [self.corner, *cols],
            [[row, *self.values[i][: len(cols)]] for i, row in enumerate(rows)],
            caption=self.description().title,
            note=matrix_line(self) + cut,
        )

    # --- plain data ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data; the keys ``rows``, ``cols``, ``values``, ``kind``, ``range``, ``row_label``,
        ``col_label`` are those of a study unit's ``metrics["matrices"]`` entries."""
        return json_safe(
            {
                "name": self.name,
                "rows": self.rows,
                "cols": self.cols,
                "values": self.values,
                "kind": self.kind,
                "range": None if self.range is None else list(self.range),
                "row_label": self.row_label,
                "col_label": self.col_label,
                "provenance": self.provenance.to_dict(),
                **{extra: getattr(self, extra) for extra in BOUND_FIELDS if getattr(self, extra) is not None},
                **({"interval": self.interval} if self.interval else {}),
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str | None = None) -> Matrix:
        """From :meth:`to_dict`'s output or a study unit's matrix entry (whose name is its key: ``name``)."""
        missing = [k for k in ("rows", "cols", "values") if k not in data]
        if missing:
            raise StitchkitError(f"a matrix needs {', '.join(missing)}; got keys {', '.join(map(str, data)) or 'none'}")
        return cls(
            rows=list(data["rows"]),
            cols=list(data["cols"]),
            values=data["values"],
            kind=data.get("kind") or "similarity",
            range=data.get("range"),
            row_label=data.get("row_label") or "front layer",
            col_label=data.get("col_label") or "end layer",
            name=name if name is not None else data.get("name", ""),
            provenance=Provenance.from_dict(data.get("provenance")),
            **{extra: data.get(extra) for extra in BOUND_FIELDS},
            interval=data.get("interval") or {},
        )

    # --- files -----------------------------------------------------------------------------------
    @property
    def corner(self) -> str:
        """The CSV's first header cell: ``row label \\ column label``."""
        return f"{self.row_label} \\ {self.col_label}"

    def table_columns(self) -> list[str]:
        """The CSV and Parquet header: the corner, the columns' values, then each bound the matrix has,
        column by column (``"layer2.1 (lower)"``, …, ``"layer2.1 (upper)"``, …, ``"layer2.1 (p)"``)."""
        bounds = [
            f"{c} ({BOUND_SUFFIX[extra]})"
            for extra in BOUND_FIELDS
            if getattr(self, extra) is not None
            for c in self.cols
        ]
        return [self.corner, *self.cols, *bounds]

    def table_rows(self) -> list[dict[str, Any]]:
        """One dict per row, ``{corner: row, col: value, …, "col (lower)": …}``: the CSV and Parquet layout."""
        out = []
        for i, row in enumerate(self.rows):
            cells = {self.corner: row, **dict(zip(self.cols, self.values[i]))}
            for extra in BOUND_FIELDS:
                grid = getattr(self, extra)
                if grid is not None:
                    cells.update({f"{c} ({BOUND_SUFFIX[extra]})": v for c, v in zip(self.cols, grid[i])})
            out.append(cells)
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """CSV, JSON or Parquet by the suffix; written whole or not at all."""
        path, fmt = _check_file(path)
        if fmt == "json":
            write_json_atomic(path, self.to_dict())
        elif fmt == "csv":
            write_csv_atomic(path, self.table_rows(), self.table_columns())
        else:
            write_parquet_atomic(path, self.table_rows(), self.table_columns())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, **fields_: Any) -> Matrix:
        """Read what :meth:`save` wrote. From CSV or Parquet, the values and labels come from the file and
        the other fields (``kind``, ``range``, ``name``, ``provenance``) from the keywords."""
        path, fmt = _check_file(path)
        if fmt == "json":
            return cls.from_dict(read_json(path))
        columns, rows = read_csv(path) if fmt == "csv" else read_parquet(path)
        if not columns or " \\ " not in columns[0]:
            raise StitchkitError(
                f"{str(path)!r} is not a matrix file: its first header cell should be 'row label \\ column label'"
            )
        row_label, col_label = columns[0].split(" \\ ", 1)
        suffixes = {f" ({suffix})": extra for extra, suffix in BOUND_SUFFIX.items()}
        cols = [c for c in columns[1:] if not any(c.endswith(s) for s in suffixes)]
        extras = (
            {
                extra: [[r[f"{c}{s}"] for c in cols] for r in rows]
                for s, extra in suffixes.items()
                if f"{cols[0]}{s}" in columns
            }
            if cols
            else {}
        )
        return cls(
            rows=[str(r[columns[0]]) for r in rows],
            cols=cols,
            values=[[r[c] for c in cols] for r in rows],
            row_label=row_label,
            col_label=col_label,
            **{**extras, **fields_},
        )


@dataclass(repr=False)
class Table(Described):
    """Rows of named values (one dict per row; ``columns`` in order, default every key in first-seen
    order), with the :class:`Provenance` of the whole table."""

    rows: list[dict[str, Any]]
    columns: list[str] = field(default_factory=list)
    name: str = ""
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        self.rows = [dict(row) for row in self.rows]
        seen = list(self.columns)
        for row in self.rows:
            seen += [str(k) for k in row if str(k) not in seen]
        self.columns = seen
        if isinstance(self.provenance, Mapping):
            self.provenance = Provenance.from_dict(self.provenance)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[Any]:
        if name not in self.columns:
            raise StitchkitError(f"no column {name!r} in this table; it has {', '.join(self.columns)}")
        return [row.get(name) for row in self.rows]

    def to_pandas(self):
        """A DataFrame with one row per record and the table's columns in order (missing cells NaN/None)."""
        import pandas as pd  # deferred, as in Matrix.to_pandas

        return pd.DataFrame([[row.get(c) for c in self.columns] for row in self.rows], columns=self.columns)

    def plot(self, x: str | None = None, y: str | Sequence[str] | None = None, *, ax=None, title: str | None = None):
        """Bars of the numeric column(s) ``y`` (default: every numeric column) per value of ``x``
        (default: the first column that is not numeric, else the row number); returns the figure (a
        notebook shows a new one by itself, as :meth:`Matrix.plot`'s)."""
        figure = bar_chart(self, x=x, y=y, ax=ax, title=title)
        return figure if ax is not None else inline(figure)

    # --- display ---------------------------------------------------------------------------------
    def description(self) -> Description:
        """The title (name, size), the columns and, for :meth:`summary`, what the table holds."""
        title = f"Table{f' {self.name!r}' if self.name else ''}: {len(self.rows)} rows × {len(self.columns)} columns"
        return Description(
            title, {"columns": labels(self.columns, 10)}, {}, [self.provenance.what] if self.provenance.what else []
        )

    def _repr_html_(self) -> str:
        """The first :data:`~.display.HTML_CELLS` rows, every column."""
        shown = self.rows[:HTML_CELLS]
        note = "" if len(shown) == len(self.rows) else f"first {len(shown)} of {len(self.rows)} rows shown"
        return html_grid(
            self.columns,
            [[row.get(c) for c in self.columns] for row in shown],
            caption=self.description().title,
            note=note,
        )

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {"name": self.name, "columns": self.columns, "rows": self.rows, "provenance": self.provenance.to_dict()}
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Table:
        if "rows" not in data:
            raise StitchkitError(f"a table needs rows; got keys {', '.join(map(str, data)) or 'none'}")
        return cls(
            rows=list(data["rows"]),
            columns=list(data.get("columns") or []),
            name=data.get("name", ""),
            provenance=Provenance.from_dict(data.get("provenance")),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """CSV, JSON or Parquet by the suffix; written whole or not at all. In CSV and Parquet a list or
        dict cell is written as its JSON text."""
        path, fmt = _check_file(path)
        if fmt == "json":
            write_json_atomic(path, self.to_dict())
        elif fmt == "csv":
            write_csv_atomic(path, self.rows, self.columns)
        else:
            write_parquet_atomic(path, self.rows, self.columns)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, **fields_: Any) -> Table:
        """Read what :meth:`save` wrote (from CSV: numbers come back as numbers, empty cells as None)."""
        path, fmt = _check_file(path)
        if fmt == "json":
            return cls.from_dict(read_json(path))
        columns, rows = read_csv(path) if fmt == "csv" else read_parquet(path)
        return cls(rows=rows, columns=columns, **fields_)


__all__ = ["FORMATS", "KINDS", "Matrix", "Provenance", "Table"]
